// Copyright: streamops.day2 contributors
// GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Benchmark anchor: what `kafka-reassign-partitions.sh --generate` proposes for a cluster model.
//
// The tool reads the current assignment from a live cluster, which cannot hold the benchmark's
// 200-broker models; so this calls the very method its --generate calls on that assignment
// (ReassignPartitionsCommand.calculateAssignment: Kafka's StripedReplicaPlacer, rack-aware round
// robin) on the model's brokers (drained ones left out) and the partitions of every topic not excluded.
//
//   java -cp "<kafka libs>/*:<classes>" KafkaGenerate model.json [excluded-topic ...]  > proposal.json
//
// Output: {"seconds": s, "partitions": [{"topic", "partition", "replicas"}]} for every planned partition.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.metadata.placement.UsableBroker;
import org.apache.kafka.tools.reassign.ReassignPartitionsCommand;

public class KafkaGenerate {
    public static void main(String[] args) throws Exception {
        ObjectMapper json = new ObjectMapper();
        JsonNode model = json.readTree(new File(args[0]));
        Set<String> excluded = new HashSet<>();
        for (int i = 1; i < args.length; i++) excluded.add(args[i]);
        Set<Integer> drained = new HashSet<>();
        for (JsonNode b : model.path("drain_brokers")) drained.add(b.asInt());
        List<UsableBroker> brokers = new ArrayList<>();
        for (JsonNode b : model.get("brokers")) {
            if (drained.contains(b.get("id").asInt())) continue;
            Optional<String> rack = b.hasNonNull("rack") ? Optional.of(b.get("rack").asText()) : Optional.empty();
            brokers.add(new UsableBroker(b.get("id").asInt(), rack, false));
        }
        Map<TopicPartition, List<Integer>> current = new HashMap<>();
        for (JsonNode p : model.get("partitions")) {
            if (excluded.contains(p.get("topic").asText())) continue;
            List<Integer> replicas = new ArrayList<>();
            for (JsonNode r : p.get("replicas")) replicas.add(r.asInt());
            current.put(new TopicPartition(p.get("topic").asText(), p.get("partition").asInt()), replicas);
        }
        Method calculate = ReassignPartitionsCommand.class.getDeclaredMethod("calculateAssignment", Map.class, List.class);
        calculate.setAccessible(true);
        long start = System.nanoTime();
        @SuppressWarnings("unchecked")
        Map<TopicPartition, List<Integer>> proposed = (Map<TopicPartition, List<Integer>>) calculate.invoke(null, current, brokers);
        double seconds = (System.nanoTime() - start) / 1e9;
        ObjectNode out = json.createObjectNode();
        out.put("seconds", seconds);
        ArrayNode parts = out.putArray("partitions");
        for (Map.Entry<TopicPartition, List<Integer>> e : proposed.entrySet()) {
            ObjectNode entry = parts.addObject();
            entry.put("topic", e.getKey().topic());
            entry.put("partition", e.getKey().partition());
            ArrayNode replicas = entry.putArray("replicas");
            for (Integer r : e.getValue()) replicas.add(r);
        }
        json.writeValue(System.out, out);
    }
}
