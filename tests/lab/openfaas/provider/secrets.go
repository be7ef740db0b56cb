package main

// Secrets as Kubernetes Secrets in a function namespace, labelled the way faas-netes labels them;
// a secret's one key is its own name, so a function sees it at /var/openfaas/secrets/<name>.

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/openfaas/faas-provider/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	secretLabel      = "app.kubernetes.io/managed-by"
	secretLabelValue = "openfaas"
)

// checkSecrets: a function may only name secrets that exist in its namespace.
func (p *provider) checkSecrets(ctx context.Context, ns string, names []string) error {
	var missing []string
	for _, name := range sortedUnique(names) {
		if _, err := p.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			missing = append(missing, name)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return errorf(http.StatusBadRequest, "secret(s) %s not found in namespace %s (create them first)", strings.Join(missing, ", "), ns)
	}
	return nil
}

func (p *provider) secrets(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req types.Secret
	if r.Method != http.MethodGet {
		if err := decode(r, &req); err != nil {
			fail(w, err)
			return
		}
		if req.Name == "" {
			fail(w, errorf(http.StatusBadRequest, "a secret needs a name"))
			return
		}
	}
	ns, err := p.namespace(ctx, r, req.Namespace)
	if err != nil {
		fail(w, err)
		return
	}
	api := p.cs.CoreV1().Secrets(ns)
	value := req.RawValue
	if len(value) == 0 {
		value = []byte(req.Value)
	}
	switch r.Method {
	case http.MethodGet:
		list, err := api.List(ctx, metav1.ListOptions{LabelSelector: secretLabel + "=" + secretLabelValue})
		if err != nil {
			fail(w, err)
			return
		}
		out := []types.Secret{}
		for _, s := range list.Items {
			out = append(out, types.Secret{Name: s.Name, Namespace: s.Namespace})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		reply(w, http.StatusOK, out)
		return
	case http.MethodPost:
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: req.Name, Namespace: ns, Labels: map[string]string{secretLabel: secretLabelValue}},
			Data:       map[string][]byte{req.Name: value},
		}
		_, err = api.Create(ctx, s, metav1.CreateOptions{})
	case http.MethodPut:
		var s *corev1.Secret
		if s, err = api.Get(ctx, req.Name, metav1.GetOptions{}); err == nil {
			s.Data = map[string][]byte{req.Name: value}
			_, err = api.Update(ctx, s, metav1.UpdateOptions{})
		}
	case http.MethodDelete:
		err = api.Delete(ctx, req.Name, metav1.DeleteOptions{})
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
