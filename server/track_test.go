package server

import (
	"encoding/base64"
	"net/http"
	"testing"
)

// go-customerio v3 encodes Basic credentials with base64.URLEncoding
// (customerio.go:150-152), which differs from the standard alphabet when
// the encoding holds '-' or '_'; both must be read.
func TestBasicAuthEncodings(t *testing.T) {
	const site, key = "site?>", "hk_~~~?"
	std := base64.StdEncoding.EncodeToString([]byte(site + ":" + key))
	url := base64.URLEncoding.EncodeToString([]byte(site + ":" + key))
	if std == url {
		t.Fatalf("test credentials encode the same in both alphabets: %s", std)
	}
	for _, enc := range []string{std, url} {
		r, _ := http.NewRequest("PUT", "/api/v1/customers/5", nil)
		r.Header.Set("Authorization", "Basic "+enc)
		gotSite, gotKey, ok := basicAuth(r)
		if !ok || gotSite != site || gotKey != key {
			t.Errorf("basicAuth(%s) = %q, %q, %v; want %q, %q, true", enc, gotSite, gotKey, ok, site, key)
		}
	}
}
