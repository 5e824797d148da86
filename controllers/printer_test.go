package controllers

import (
	"context"
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// printerTable asks the API server for the table kubectl get prints.
func printerTable(t *testing.T, ns string) *metav1.Table {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &tokensyncv1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace(ns).Resource("tokenrequests").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(context.Background()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(raw, table); err != nil {
		t.Fatal(err)
	}
	return table
}

// checkPrinterColumns checks kubectl's columns for a Ready TokenRequest.
func checkPrinterColumns(t *testing.T, ns string, tr *tokensyncv1alpha1.TokenRequest) {
	t.Helper()
	table := printerTable(t, ns)
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	want := []string{"Name", "Provider", "Secret", "Ready", "Expires", "Reason", "Next Refresh", "Age"}
	if len(names) != len(want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("columns %v, want %v", names, want)
		}
	}
	for _, row := range table.Rows {
		if row.Cells[0] != tr.Name {
			continue
		}
		wantCells := []any{tr.Name, string(tr.Spec.Provider), tr.Status.SecretName, "True",
			tr.Status.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"), "TokenIssued", tr.Status.NextRefreshTime.UTC().Format("2006-01-02T15:04:05Z")}
		for i, w := range wantCells {
			if row.Cells[i] != w {
				t.Errorf("column %s = %v, want %v", want[i], row.Cells[i], w)
			}
		}
		if table.ColumnDefinitions[5].Priority != 1 || table.ColumnDefinitions[6].Priority != 1 {
			t.Errorf("Reason and Next Refresh should only show with -o wide")
		}
		return
	}
	t.Fatalf("no row for %s", tr.Name)
}
