// Command provider is the streamops lab's OpenFaaS provider: the REST contract of the provider SDK
// (github.com/openfaas/faas-provider, MIT) served for the real OpenFaaS gateway, on the lab's
// Kubernetes through client-go. Each function is a Deployment + Service in a function namespace
// (openfaas-fn by default), the way faas-netes lays them out; invocations are proxied by the SDK's
// proxy to a ready pod's IP on port 8080 (never to a ClusterIP: the lab has no kube-proxy).
//
// It exists because no Kubernetes provider can be had on the lab's machines (see ../README.md).
// It listens on 127.0.0.1 only: the SDK's bootstrap.Serve binds every interface, so the routes it
// would register are registered here, on our own listener, with the SDK's types, auth and proxy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/auth"
	"github.com/openfaas/faas-provider/proxy"
	"github.com/openfaas/faas-provider/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// nameExpression is the SDK's (bootstrap.NameExpression): what a function name may contain.
const nameExpression = "-a-zA-Z_0-9."

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on (loopback only)")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab's Kubernetes")
	namespace := flag.String("namespace", "openfaas-fn", "default function namespace (made when missing)")
	secrets := flag.String("secrets", "", "folder with basic-auth-user and basic-auth-password (empty: no auth)")
	pullPolicy := flag.String("pull-policy", "Never", "imagePullPolicy of function pods (Never: nothing leaves the machine)")
	grace := flag.Int64("grace", 2, "terminationGracePeriodSeconds of function pods")
	timeout := flag.Duration("timeout", 60*time.Second, "longest invocation proxied to a function")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-listen %q: the lab's provider listens on a loopback address only", *listen)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig %s: %v", *kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("kubernetes client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := ensureNamespace(ctx, cs, *namespace); err != nil {
		log.Fatalf("namespace %s: %v", *namespace, err)
	}
	// Informers for every function pod and Deployment (label faas_function), in every namespace:
	// availability and the proxy's endpoints come from their caches, not from the API on every invocation.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(
		func(o *metav1.ListOptions) { o.LabelSelector = functionLabel }))
	podInformer, depInformer := factory.Core().V1().Pods(), factory.Apps().V1().Deployments()
	pods, deps := podInformer.Lister(), depInformer.Lister()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced, depInformer.Informer().HasSynced) {
		log.Fatal("informers did not sync")
	}

	p := &provider{cs: cs, defaultNS: *namespace, pods: pods, deployments: deps, pullPolicy: corev1.PullPolicy(*pullPolicy), grace: *grace}
	router := p.routes(types.FaaSConfig{ReadTimeout: *timeout, WriteTimeout: *timeout, MaxIdleConns: 256, MaxIdleConnsPerHost: 32},
		readCredentials(*secrets))
	server := &http.Server{Addr: *listen, Handler: router, ReadTimeout: *timeout + 5*time.Second,
		WriteTimeout: *timeout + 5*time.Second, MaxHeaderBytes: http.DefaultMaxHeaderBytes}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	log.Printf("streamops lab OpenFaaS provider on %s, default namespace %s, basic auth %v", *listen, *namespace, *secrets != "")
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func readCredentials(dir string) *auth.BasicAuthCredentials {
	if dir == "" {
		return nil
	}
	credentials, err := (&auth.ReadBasicAuthFromDisk{SecretMountPath: dir}).Read()
	if err != nil {
		log.Fatalf("basic auth: %v", err)
	}
	return credentials
}

// routes: the same routes as the SDK's bootstrap.Serve; /system endpoints behind basic auth (the
// gateway sends its own credentials), /function open, as with every OpenFaaS provider.
func (p *provider) routes(config types.FaaSConfig, credentials *auth.BasicAuthCredentials) *mux.Router {
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		if credentials == nil {
			return h
		}
		return auth.DecorateWithBasicAuth(h, credentials)
	}
	r := mux.NewRouter()
	name := "{name:[" + nameExpression + "]+}"
	r.HandleFunc("/system/functions", guard(p.list)).Methods(http.MethodGet)
	r.HandleFunc("/system/functions", guard(p.deploy)).Methods(http.MethodPost)
	r.HandleFunc("/system/functions", guard(p.update)).Methods(http.MethodPut)
	r.HandleFunc("/system/functions", guard(p.delete)).Methods(http.MethodDelete)
	r.HandleFunc("/system/function/"+name, guard(p.get)).Methods(http.MethodGet)
	r.HandleFunc("/system/scale-function/"+name, guard(p.scale)).Methods(http.MethodPost)
	r.HandleFunc("/system/namespaces", guard(p.namespaces)).Methods(http.MethodGet)
	r.HandleFunc("/system/secrets", guard(p.secrets)).Methods(http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
	r.HandleFunc("/system/info", guard(p.info)).Methods(http.MethodGet)
	r.HandleFunc("/system/logs", guard(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "logs are not implemented by the lab's provider (use kubectl logs)", http.StatusNotImplemented)
	})).Methods(http.MethodGet)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }).Methods(http.MethodGet)

	invoke := proxy.NewHandlerFunc(config, p, false)
	r.HandleFunc("/function/"+name, invoke)
	r.HandleFunc("/function/"+name+"/", invoke)
	r.HandleFunc("/function/"+name+"/{params:.*}", invoke)
	return r
}

// ---------------------------------------------------------------------------- HTTP helpers ----

// fail answers an error as plain text: status from the Kubernetes error when it is one.
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpErr
	switch {
	case errors.As(err, &he):
		code = he.code
	case apierrors.IsNotFound(err):
		code = http.StatusNotFound
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		code = http.StatusConflict
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		code = http.StatusBadRequest
	}
	if code >= 500 {
		log.Printf("error: %v", err)
	}
	http.Error(w, err.Error(), code)
}

type httpErr struct {
	code int
	msg  string
}

func (e *httpErr) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpErr{code: code, msg: fmt.Sprintf(format, args...)}
}

func decode(r *http.Request, into any) error {
	if r.Body == nil {
		return errorf(http.StatusBadRequest, "a JSON body is required")
	}
	if err := json.NewDecoder(r.Body).Decode(into); err != nil {
		return errorf(http.StatusBadRequest, "the body is not valid JSON for this endpoint: %v", err)
	}
	return nil
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
