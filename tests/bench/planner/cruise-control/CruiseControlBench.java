// Copyright: streamops.day2 contributors
// GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Benchmark anchor (never a runtime dependency): Cruise Control's GoalOptimizer on a cluster model.
//
// Builds Cruise Control's own ClusterModel from the model file the way its LoadMonitor would (leader
// replicas carry NW_IN, NW_OUT = consumers + replication, DISK; followers NW_IN and DISK), runs
// GoalOptimizer.optimizations with the Cruise Control configuration file given (the figures in
// tests/bench/README.md used its shipped config/cruisecontrol.properties: default.goals in their priority order,
// balance thresholds 1.1, capacity thresholds 0.8), brokers to drain marked DEAD as its remove_broker does, and
// prints its proposals. Cruise Control itself is not part of this repository: its jars and their dependencies come
// from the class path the user supplies (CRUISE_CONTROL_CLASSPATH, see tests/bench/planner/anchors.py).
//
//   java -cp "$CRUISE_CONTROL_CLASSPATH:<classes>" CruiseControlBench model.json cruisecontrol.properties [excluded-topic ...] > proposal.json
//
// Output: {"seconds": s, "partitions": [{"topic", "partition", "replicas" (new leader first)}], "note": ...}
import com.codahale.metrics.MetricRegistry;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.linkedin.cruisecontrol.monitor.sampling.aggregator.AggregatedMetricValues;
import com.linkedin.cruisecontrol.monitor.sampling.aggregator.MetricValues;
import com.linkedin.kafka.cruisecontrol.analyzer.AnalyzerUtils;
import com.linkedin.kafka.cruisecontrol.analyzer.GoalOptimizer;
import com.linkedin.kafka.cruisecontrol.analyzer.OptimizerResult;
import com.linkedin.kafka.cruisecontrol.analyzer.goals.Goal;
import com.linkedin.kafka.cruisecontrol.async.progress.OperationProgress;
import com.linkedin.kafka.cruisecontrol.common.Resource;
import com.linkedin.kafka.cruisecontrol.config.BrokerCapacityConfigFileResolver;
import com.linkedin.kafka.cruisecontrol.config.BrokerCapacityInfo;
import com.linkedin.kafka.cruisecontrol.config.JsonFileTopicConfigProvider;
import com.linkedin.kafka.cruisecontrol.config.KafkaCruiseControlConfig;
import com.linkedin.kafka.cruisecontrol.config.constants.AnalyzerConfig;
import com.linkedin.kafka.cruisecontrol.config.constants.AnomalyDetectorConfig;
import com.linkedin.kafka.cruisecontrol.config.constants.MonitorConfig;
import com.linkedin.kafka.cruisecontrol.detector.NoopTopicAnomalyFinder;
import com.linkedin.kafka.cruisecontrol.executor.ExecutionProposal;
import com.linkedin.kafka.cruisecontrol.model.Broker;
import com.linkedin.kafka.cruisecontrol.model.ClusterModel;
import com.linkedin.kafka.cruisecontrol.model.ReplicaPlacementInfo;
import com.linkedin.kafka.cruisecontrol.monitor.ModelGeneration;
import com.linkedin.kafka.cruisecontrol.monitor.metricdefinition.KafkaMetricDef;
import com.linkedin.kafka.cruisecontrol.monitor.sampling.NoopSampler;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Time;

public class CruiseControlBench {
    public static void main(String[] args) throws Exception {
        ObjectMapper json = new ObjectMapper();
        JsonNode model = json.readTree(new File(args[0]));
        Set<String> excluded = new HashSet<>();
        for (int i = 2; i < args.length; i++) excluded.add(args[i]);

        KafkaCruiseControlConfig config = new KafkaCruiseControlConfig(properties(Path.of(args[1]), excluded));
        ClusterModel cluster = clusterModel(model);
        List<Goal> goals = AnalyzerUtils.getDefaultGoalsByPriority(config);
        // GoalOptimizer wants an AdminClient (for options it does not use here): one pointed nowhere, never called.
        Properties adminProps = new Properties();
        adminProps.setProperty("bootstrap.servers", "127.0.0.1:1");
        AdminClient admin = AdminClient.create(adminProps);
        GoalOptimizer optimizer = new GoalOptimizer(config, null, Time.SYSTEM, new MetricRegistry(), null, admin);

        ObjectNode out = json.createObjectNode();
        long start = System.nanoTime();
        OptimizerResult result;
        try {
            result = optimizer.optimizations(cluster, goals, new OperationProgress());
        } catch (Exception e) {
            out.put("seconds", (System.nanoTime() - start) / 1e9);
            out.putArray("partitions");
            out.put("note", "optimizer failed: " + e);
            json.writeValue(System.out, out);
            return;
        }
        out.put("seconds", (System.nanoTime() - start) / 1e9);
        ArrayNode parts = out.putArray("partitions");
        for (ExecutionProposal proposal : result.goalProposals()) {
            ObjectNode entry = parts.addObject();
            entry.put("topic", proposal.topicPartition().topic());
            entry.put("partition", proposal.topicPartition().partition());
            ArrayNode replicas = entry.putArray("replicas");
            int leader = proposal.newLeader().brokerId();
            replicas.add(leader);
            for (ReplicaPlacementInfo r : proposal.newReplicas()) {
                if (r.brokerId() != leader) replicas.add(r.brokerId());
            }
        }
        out.put("note", "violated goals after optimization: " + result.violatedGoalsAfterOptimization());
        json.writeValue(System.out, out);
        System.exit(0);  // the optimizer's thread pool would keep the JVM alive
    }

    static Properties properties(Path shipped, Set<String> excluded) throws Exception {
        Properties props = new Properties();
        try (java.io.Reader reader = Files.newBufferedReader(shipped)) {
            props.load(reader);  // goals, thresholds: Cruise Control as shipped
        }
        // What only a running service needs, pointed at harmless stand-ins.
        Path dir = Files.createTempDirectory("cc-bench");
        Path capacity = dir.resolve("capacity.json");
        Files.writeString(capacity, "{\"brokerCapacities\":[{\"brokerId\":\"-1\",\"capacity\":{\"DISK\":\"1e12\",\"CPU\":\"100\","
                                    + "\"NW_IN\":\"1e12\",\"NW_OUT\":\"1e12\"},\"doc\":\"unused: the model sets capacities\"}]}");
        Path clusterConfigs = dir.resolve("cluster.json");
        Files.writeString(clusterConfigs, "{\"min.insync.replicas\": 1}");
        Path brokerSets = dir.resolve("brokersets.json");
        Files.writeString(brokerSets, "{\"brokerSets\":[]}");
        props.setProperty(MonitorConfig.BOOTSTRAP_SERVERS_CONFIG, "localhost:9092");
        props.setProperty(MonitorConfig.METRIC_SAMPLER_CLASS_CONFIG, NoopSampler.class.getName());
        props.setProperty(BrokerCapacityConfigFileResolver.CAPACITY_CONFIG_FILE, capacity.toString());
        props.setProperty(JsonFileTopicConfigProvider.CLUSTER_CONFIGS_FILE, clusterConfigs.toString());
        props.setProperty(AnalyzerConfig.BROKER_SET_CONFIG_FILE_CONFIG, brokerSets.toString());
        props.setProperty(AnomalyDetectorConfig.TOPIC_ANOMALY_FINDER_CLASSES_CONFIG, NoopTopicAnomalyFinder.class.getName());
        props.setProperty(AnalyzerConfig.TOPICS_EXCLUDED_FROM_PARTITION_MOVEMENT_CONFIG, String.join("|", excluded));
        props.setProperty(AnalyzerConfig.NUM_PROPOSAL_PRECOMPUTE_THREADS_CONFIG, "1");
        return props;
    }

    static AggregatedMetricValues load(double nwIn, double nwOut, double disk) {
        AggregatedMetricValues values = new AggregatedMetricValues();
        set(values, Resource.CPU, 0.0);
        set(values, Resource.NW_IN, nwIn);
        set(values, Resource.NW_OUT, nwOut);
        set(values, Resource.DISK, disk);
        return values;
    }

    // As Cruise Control's own test utilities do: the value goes to the first metric of the resource.
    static void set(AggregatedMetricValues values, Resource resource, double value) {
        boolean first = true;
        for (short id : KafkaMetricDef.resourceToMetricIds(resource)) {
            MetricValues metric = new MetricValues(1);
            if (first) {
                metric.set(0, value);
                first = false;
            }
            values.add(id, metric);
        }
    }

    static ClusterModel clusterModel(JsonNode model) {
        // Cruise Control's units: KB/s for network, MB for disk.
        Map<Integer, String> rackOf = new HashMap<>();
        Map<Integer, double[]> brokerLoad = new HashMap<>();
        for (JsonNode b : model.get("brokers")) {
            int id = b.get("id").asInt();
            rackOf.put(id, b.hasNonNull("rack") ? b.get("rack").asText() : "rack-" + id);
            brokerLoad.put(id, new double[3]);
        }
        for (JsonNode p : model.get("partitions")) {
            int rf = p.get("replicas").size();
            int leader = p.hasNonNull("leader") ? p.get("leader").asInt() : p.get("replicas").get(0).asInt();
            for (JsonNode r : p.get("replicas")) {
                double[] l = brokerLoad.get(r.asInt());
                l[0] += p.get("nw_in").asDouble() / 1e3;
                l[2] += p.get("size").asDouble() / 1e6;
                if (r.asInt() == leader) l[1] += (p.get("nw_out").asDouble() + p.get("nw_in").asDouble() * (rf - 1)) / 1e3;
            }
        }
        // Homogeneous brokers with room to spare: capacity 2.5x the most loaded broker, so the capacity goals
        // (at 80%) hold and the distribution goals balance utilisation, i.e. load.
        double[] most = new double[3];
        for (double[] l : brokerLoad.values()) for (int i = 0; i < 3; i++) most[i] = Math.max(most[i], l[i]);
        Map<Resource, Double> capacity = new EnumMap<>(Resource.class);
        capacity.put(Resource.CPU, 100.0);
        capacity.put(Resource.NW_IN, Math.max(1.0, 2.5 * most[0]));
        capacity.put(Resource.NW_OUT, Math.max(1.0, 2.5 * most[1]));
        capacity.put(Resource.DISK, Math.max(1.0, 2.5 * most[2]));

        ClusterModel cluster = new ClusterModel(new ModelGeneration(0, 0L), 1.0);
        Set<String> racks = new HashSet<>();
        for (JsonNode b : model.get("brokers")) {
            int id = b.get("id").asInt();
            if (racks.add(rackOf.get(id))) cluster.createRack(rackOf.get(id));
            Map<Resource, Double> own = new EnumMap<>(capacity);
            JsonNode declared = b.path("capacity");
            if (declared.has("nw_in")) own.put(Resource.NW_IN, declared.get("nw_in").asDouble() / 1e3);
            if (declared.has("nw_out")) own.put(Resource.NW_OUT, declared.get("nw_out").asDouble() / 1e3);
            if (declared.has("disk")) own.put(Resource.DISK, declared.get("disk").asDouble() / 1e6);
            cluster.createBroker(rackOf.get(id), "host-" + id, id, new BrokerCapacityInfo(own), false);
        }
        List<Long> windows = Collections.singletonList(1L);
        for (JsonNode p : model.get("partitions")) {
            TopicPartition tp = new TopicPartition(p.get("topic").asText(), p.get("partition").asInt());
            int rf = p.get("replicas").size();
            int leader = p.hasNonNull("leader") ? p.get("leader").asInt() : p.get("replicas").get(0).asInt();
            List<Integer> order = new ArrayList<>();
            for (JsonNode r : p.get("replicas")) order.add(r.asInt());
            for (int i = 0; i < order.size(); i++) {
                int b = order.get(i);
                cluster.createReplica(rackOf.get(b), b, tp, i, b == leader);
            }
            double nwIn = p.get("nw_in").asDouble() / 1e3;
            double disk = p.get("size").asDouble() / 1e6;
            double leaderOut = (p.get("nw_out").asDouble() + p.get("nw_in").asDouble() * (rf - 1)) / 1e3;
            // The leader's load first: setReplicaLoad updates the partition's potential leadership load from it.
            cluster.setReplicaLoad(rackOf.get(leader), leader, tp, load(nwIn, leaderOut, disk), windows);
            for (int b : order) {
                if (b != leader) cluster.setReplicaLoad(rackOf.get(b), b, tp, load(nwIn, 0.0, disk), windows);
            }
        }
        for (JsonNode d : model.path("drain_brokers")) {
            cluster.setBrokerState(d.asInt(), Broker.State.DEAD);  // what remove_broker does: everything must leave
        }
        return cluster;
    }
}
