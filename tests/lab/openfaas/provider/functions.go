package main

// Functions as Deployments + Services: deploy, update, list, get, delete, scale, and the
// endpoints the proxy sends invocations to.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/retry"
)

const (
	functionLabel  = "faas_function"          // on Deployments, Services and pods, as faas-netes sets it
	revisionKey    = "streamops.lab/revision" // pod template annotation: hash of the pod spec asked for
	scrapeKey      = "prometheus.io.scrape"   // faas-netes adds it to every function: the server fills it in
	namespaceLabel = "openfaas"               // namespaces labelled openfaas=1 hold functions too
	secretsPath    = "/var/openfaas/secrets"
	watchdogPort   = 8080
	maxReplicas    = 20 // a lab on two cores
)

type provider struct {
	cs          kubernetes.Interface
	defaultNS   string
	pods        listersv1.PodLister
	deployments appslisters.DeploymentLister
	pullPolicy  corev1.PullPolicy
	grace       int64
	next        atomic.Uint64 // round robin over a function's ready pods
}

// ------------------------------------------------------------------------------ namespaces ----

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{namespaceLabel: "1"}}}
		_, err = cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	return err
}

// functionNamespaces: the default one and every namespace labelled openfaas=1, sorted.
func (p *provider) functionNamespaces(ctx context.Context) ([]string, error) {
	list, err := p.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: namespaceLabel + "=1"})
	if err != nil {
		return nil, err
	}
	names := []string{p.defaultNS}
	for _, ns := range list.Items {
		if ns.Name != p.defaultNS {
			names = append(names, ns.Name)
		}
	}
	sort.Strings(names[1:])
	return names, nil
}

// namespace: the one asked for (body, else ?namespace=, else the default), if it holds functions.
func (p *provider) namespace(ctx context.Context, r *http.Request, fromBody string) (string, error) {
	ns := fromBody
	if ns == "" {
		ns = r.URL.Query().Get("namespace")
	}
	if ns == "" || ns == p.defaultNS {
		return p.defaultNS, nil
	}
	allowed, err := p.functionNamespaces(ctx)
	if err != nil {
		return "", err
	}
	for _, name := range allowed {
		if name == ns {
			return ns, nil
		}
	}
	return "", errorf(http.StatusBadRequest, "namespace %s is not a function namespace of this provider (%s)", ns, strings.Join(allowed, ", "))
}

func (p *provider) namespaces(w http.ResponseWriter, r *http.Request) {
	names, err := p.functionNamespaces(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, names)
}

func (p *provider) info(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, types.ProviderInfo{Name: "streamops-lab-provider", Orchestration: "kubernetes",
		Version: &types.VersionInfo{Release: "1", SHA: "lab"}})
}

// ------------------------------------------------------------------------------- functions ----

// function: the Deployment of a function (404 for one that is missing or not a function's).
func (p *provider) function(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	d, err := p.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil && d.Labels[functionLabel] != name {
		err = apierrors.NewNotFound(appsv1.Resource("deployments"), name)
	}
	if apierrors.IsNotFound(err) {
		return nil, errorf(http.StatusNotFound, "function %s not found in namespace %s", name, ns)
	}
	return d, err
}

func (p *provider) list(w http.ResponseWriter, r *http.Request) {
	ns, err := p.namespace(r.Context(), r, "")
	if err != nil {
		fail(w, err)
		return
	}
	deps, err := p.cs.AppsV1().Deployments(ns).List(r.Context(), metav1.ListOptions{LabelSelector: functionLabel})
	if err != nil {
		fail(w, err)
		return
	}
	out := []types.FunctionStatus{}
	for i := range deps.Items {
		out = append(out, p.status(&deps.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	reply(w, http.StatusOK, out)
}

func (p *provider) get(w http.ResponseWriter, r *http.Request) {
	ns, err := p.namespace(r.Context(), r, "")
	if err != nil {
		fail(w, err)
		return
	}
	d, err := p.function(r.Context(), ns, mux.Vars(r)["name"])
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, p.status(d))
}

func (p *provider) deploy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req types.FunctionDeployment
	if err := decode(r, &req); err != nil {
		fail(w, err)
		return
	}
	ns, err := p.namespace(ctx, r, req.Namespace)
	if err == nil {
		err = p.checkSecrets(ctx, ns, req.Secrets)
	}
	var tmpl corev1.PodTemplateSpec
	if err == nil {
		tmpl, err = p.podTemplate(req)
	}
	if err != nil {
		fail(w, err)
		return
	}
	replicas := int32(1)
	if n, e := strconv.Atoi(labelsOf(req)["com.openfaas.scale.min"]); e == nil && n > 0 && n <= maxReplicas {
		replicas = int32(n)
	}
	zero, surge := intstr.FromInt32(0), intstr.FromInt32(1)
	d := &appsv1.Deployment{
		ObjectMeta: meta(req.Service, ns, req),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{functionLabel: req.Service}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &surge}},
			Template: tmpl,
		},
	}
	if _, err := p.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			err = errorf(http.StatusConflict, "function %s already exists in namespace %s (update it with PUT)", req.Service, ns)
		}
		fail(w, err)
		return
	}
	if err := p.ensureService(ctx, ns, req.Service); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// update: the whole spec replaced, the replica count kept; a changed pod spec rolls the pods.
func (p *provider) update(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req types.FunctionDeployment
	if err := decode(r, &req); err != nil {
		fail(w, err)
		return
	}
	ns, err := p.namespace(ctx, r, req.Namespace)
	if err == nil {
		err = p.checkSecrets(ctx, ns, req.Secrets)
	}
	var tmpl corev1.PodTemplateSpec
	if err == nil {
		tmpl, err = p.podTemplate(req)
	}
	if err == nil {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d, err := p.function(ctx, ns, req.Service)
			if err != nil {
				return err
			}
			m := meta(req.Service, ns, req)
			d.Labels, d.Annotations, d.Spec.Template = m.Labels, m.Annotations, tmpl
			_, err = p.cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		})
	}
	if err == nil {
		err = p.ensureService(ctx, ns, req.Service)
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *provider) delete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req types.DeleteFunctionRequest
	if err := decode(r, &req); err != nil {
		fail(w, err)
		return
	}
	ns, err := p.namespace(ctx, r, req.Namespace)
	if err == nil {
		_, err = p.function(ctx, ns, req.FunctionName)
	}
	if err == nil {
		background := metav1.DeletePropagationBackground
		err = p.cs.AppsV1().Deployments(ns).Delete(ctx, req.FunctionName, metav1.DeleteOptions{PropagationPolicy: &background})
	}
	if err != nil {
		fail(w, err)
		return
	}
	if err := p.cs.CoreV1().Services(ns).Delete(ctx, req.FunctionName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *provider) scale(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req types.ScaleServiceRequest
	if err := decode(r, &req); err != nil {
		fail(w, err)
		return
	}
	name := mux.Vars(r)["name"]
	ns, err := p.namespace(ctx, r, req.Namespace)
	if err == nil && req.Replicas > maxReplicas {
		err = errorf(http.StatusBadRequest, "%d replicas: the lab's provider allows at most %d", req.Replicas, maxReplicas)
	}
	if err == nil {
		_, err = p.function(ctx, ns, name)
	}
	if err == nil {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := p.cs.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Replicas = int32(req.Replicas)
			_, err = p.cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
			return err
		})
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *provider) ensureService(ctx context.Context, ns, name string) error {
	// A Service as faas-netes makes one; its ClusterIP never routes here (no kube-proxy, and the
	// service range is blackholed): the proxy goes to pod IPs.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{functionLabel: name}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{functionLabel: name},
			Ports: []corev1.ServicePort{{Name: "http", Port: watchdogPort, TargetPort: intstr.FromInt32(watchdogPort)}}},
	}
	_, err := p.cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ------------------------------------------------------------------------ spec <-> objects ----

func labelsOf(req types.FunctionDeployment) map[string]string {
	if req.Labels == nil {
		return map[string]string{}
	}
	return *req.Labels
}

// meta: the Deployment's own labels and annotations (the user's, plus faas_function and the scrape
// annotation faas-netes adds).
func meta(name, ns string, req types.FunctionDeployment) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{}, Annotations: map[string]string{scrapeKey: "false"}}
	for k, v := range labelsOf(req) {
		m.Labels[k] = v
	}
	m.Labels[functionLabel] = name
	if req.Annotations != nil {
		for k, v := range *req.Annotations {
			m.Annotations[k] = v
		}
	}
	return m
}

// podTemplate: the pod a FunctionDeployment asks for. Its hash goes into the revisionKey
// annotation, so pods of the current spec can be told from those of an earlier one.
func (p *provider) podTemplate(req types.FunctionDeployment) (corev1.PodTemplateSpec, error) {
	var t corev1.PodTemplateSpec
	if req.Service == "" || req.Image == "" {
		return t, errorf(http.StatusBadRequest, "service (the function's name) and image are required")
	}
	m := meta(req.Service, "", req)
	t.Labels, t.Annotations = m.Labels, m.Annotations

	selector := map[string]string{}
	for _, c := range req.Constraints {
		k, v, ok := parseConstraint(c)
		if !ok {
			return t, errorf(http.StatusBadRequest, "constraint %q is not key=value (for example topology.kubernetes.io/region=b)", c)
		}
		selector[k] = v
	}
	env := []corev1.EnvVar{}
	keys := make([]string, 0, len(req.EnvVars))
	for k := range req.EnvVars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: req.EnvVars[k]})
	}
	if req.EnvProcess != "" {
		env = append(env, corev1.EnvVar{Name: "fprocess", Value: req.EnvProcess})
	}
	limits, err := resourceList(req.Limits, "limits")
	if err != nil {
		return t, err
	}
	requests, err := resourceList(req.Requests, "requests")
	if err != nil {
		return t, err
	}
	c := corev1.Container{
		Name: req.Service, Image: req.Image, ImagePullPolicy: p.pullPolicy, Env: env,
		Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: watchdogPort, Protocol: corev1.ProtocolTCP}},
		Resources: corev1.ResourceRequirements{Limits: limits, Requests: requests},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/_/health", Port: intstr.FromInt32(watchdogPort)}},
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1,
		},
		SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: &req.ReadOnlyRootFilesystem},
	}
	spec := corev1.PodSpec{
		Containers: []corev1.Container{c}, NodeSelector: selector, TerminationGracePeriodSeconds: &p.grace,
		EnableServiceLinks: new(bool), AutomountServiceAccountToken: new(bool),
	}
	if len(req.Secrets) > 0 {
		// Every key of every secret as a file under /var/openfaas/secrets (a secret made through
		// /system/secrets has one key, its own name: /var/openfaas/secrets/<name>).
		sources := []corev1.VolumeProjection{}
		for _, s := range sortedUnique(req.Secrets) {
			sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: s}}})
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "secrets",
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}})
		spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "secrets", MountPath: secretsPath, ReadOnly: true})
	}
	if req.ReadOnlyRootFilesystem {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	}
	t.Spec = spec
	raw, _ := json.Marshal(t)
	sum := sha256.Sum256(raw)
	t.Annotations[revisionKey] = hex.EncodeToString(sum[:8])
	return t, nil
}

// parseConstraint: "key=value", "key==value" or "key == value" (faas-cli's form).
func parseConstraint(c string) (string, string, bool) {
	k, v, ok := strings.Cut(c, "=")
	v = strings.TrimPrefix(v, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	return k, v, ok && k != "" && !strings.Contains(v, "=")
}

func resourceList(r *types.FunctionResources, what string) (corev1.ResourceList, error) {
	if r == nil || (r.CPU == "" && r.Memory == "") {
		return nil, nil
	}
	out := corev1.ResourceList{}
	for name, value := range map[corev1.ResourceName]string{corev1.ResourceCPU: r.CPU, corev1.ResourceMemory: r.Memory} {
		if value == "" {
			continue
		}
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "%s.%s %q is not a Kubernetes quantity", what, name, value)
		}
		out[name] = q
	}
	return out, nil
}

func resources(list corev1.ResourceList) *types.FunctionResources {
	if len(list) == 0 {
		return nil
	}
	r := &types.FunctionResources{}
	if q, ok := list[corev1.ResourceCPU]; ok {
		r.CPU = q.String()
	}
	if q, ok := list[corev1.ResourceMemory]; ok {
		r.Memory = q.String()
	}
	return r
}

// status: a Deployment as the FunctionStatus the gateway and its clients read.
func (p *provider) status(d *appsv1.Deployment) types.FunctionStatus {
	t := d.Spec.Template
	c := corev1.Container{}
	if len(t.Spec.Containers) > 0 {
		c = t.Spec.Containers[0]
	}
	s := types.FunctionStatus{Name: d.Name, Namespace: d.Namespace, Image: c.Image, CreatedAt: d.CreationTimestamp.Time,
		EnvVars: map[string]string{}, Limits: resources(c.Resources.Limits), Requests: resources(c.Resources.Requests)}
	for _, e := range c.Env {
		if e.Name == "fprocess" {
			s.EnvProcess = e.Value
		} else {
			s.EnvVars[e.Name] = e.Value
		}
	}
	for k, v := range t.Spec.NodeSelector {
		s.Constraints = append(s.Constraints, k+"="+v)
	}
	sort.Strings(s.Constraints)
	for _, v := range t.Spec.Volumes {
		if v.Name == "secrets" && v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					s.Secrets = append(s.Secrets, src.Secret.Name)
				}
			}
		}
	}
	lbls, ann := map[string]string{}, map[string]string{}
	for k, v := range t.Labels {
		lbls[k] = v
	}
	for k, v := range t.Annotations {
		if k != revisionKey {
			ann[k] = v
		}
	}
	s.Labels, s.Annotations = &lbls, &ann
	if c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil {
		s.ReadOnlyRootFilesystem = *c.SecurityContext.ReadOnlyRootFilesystem
	}
	if d.Spec.Replicas != nil {
		s.Replicas = uint64(*d.Spec.Replicas)
	}
	// Available: ready pods of the current spec only, so that a wait after an update means the
	// rollout is done (the Deployment's own count includes the old pods while they still run).
	for _, pod := range p.readyPods(d.Namespace, d.Name) {
		if pod.Annotations[revisionKey] == t.Annotations[revisionKey] {
			s.AvailableReplicas++
		}
	}
	return s
}

// readyPods: a function's pods that are Ready and not being deleted, from the informer's cache.
func (p *provider) readyPods(ns, name string) []*corev1.Pod {
	all, err := p.pods.Pods(ns).List(labels.SelectorFromSet(labels.Set{functionLabel: name}))
	if err != nil {
		return nil
	}
	return filterReady(all)
}

func filterReady(all []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, pod := range all {
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
			continue
		}
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				out = append(out, pod)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Resolve (the SDK proxy's BaseURLResolver): "name" or "name.namespace" to http://<pod IP>:8080
// of one of its ready pods, round robin; pods of the current spec first, so that once the new
// spec's replicas are available (a client's wait after an update) no invocation reaches an old
// pod that is about to stop. The caches first; when they have no ready pod (one that became
// ready a moment ago), the API.
func (p *provider) Resolve(function string) (url.URL, error) {
	name, ns := function, p.defaultNS
	if i := strings.LastIndex(function, "."); i > 0 {
		name, ns = function[:i], function[i+1:]
	}
	ready := p.readyPods(ns, name)
	if d, err := p.deployments.Deployments(ns).Get(name); err == nil {
		var current []*corev1.Pod
		for _, pod := range ready {
			if pod.Annotations[revisionKey] == d.Spec.Template.Annotations[revisionKey] {
				current = append(current, pod)
			}
		}
		if len(current) > 0 {
			ready = current
		}
	}
	if len(ready) == 0 {
		list, err := p.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: functionLabel + "=" + name})
		if err == nil {
			all := make([]*corev1.Pod, 0, len(list.Items))
			for i := range list.Items {
				all = append(all, &list.Items[i])
			}
			ready = filterReady(all)
		}
	}
	if len(ready) == 0 {
		return url.URL{}, fmt.Errorf("no ready pod of %s in namespace %s", name, ns)
	}
	pod := ready[p.next.Add(1)%uint64(len(ready))]
	return url.URL{Scheme: "http", Host: fmt.Sprintf("%s:%d", pod.Status.PodIP, watchdogPort)}, nil
}

func sortedUnique(in []string) []string {
	seen, out := map[string]bool{}, []string{}
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
