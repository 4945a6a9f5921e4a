package secret

import (
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key, err := ParseKey(NewKey())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := b.Seal([]byte(`{"p8":"-----BEGIN PRIVATE KEY-----"}`), []byte("ws1/IOS"))
	if strings.Contains(sealed, "PRIVATE") || !strings.HasPrefix(sealed, "v1:") {
		t.Fatalf("sealed value leaks or lacks its prefix: %q", sealed)
	}
	if sealed == b.Seal([]byte(`{"p8":"-----BEGIN PRIVATE KEY-----"}`), []byte("ws1/IOS")) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	got, err := b.Open(sealed, []byte("ws1/IOS"))
	if err != nil || string(got) != `{"p8":"-----BEGIN PRIVATE KEY-----"}` {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(sealed, []byte("ws2/IOS")); err == nil {
		t.Error("opened with another workspace's binding")
	}
	other, _ := New(mustKey(t))
	if _, err := other.Open(sealed, []byte("ws1/IOS")); err == nil {
		t.Error("opened with another key")
	}
	if _, err := b.Open(`{"plain":"json"}`, nil); err != ErrNotSealed {
		t.Errorf("plain value: %v, want ErrNotSealed", err)
	}
	tampered := sealed[:len(sealed)-4] + "AAA="
	if _, err := b.Open(tampered, []byte("ws1/IOS")); err == nil {
		t.Error("opened a tampered value")
	}
}

func TestParseKey(t *testing.T) {
	for _, bad := range []string{"", "short", strings.Repeat("z", 64), strings.Repeat("ab", 31)} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if _, err := ParseKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="); err != nil {
		t.Errorf("base64 key: %v", err)
	}
}

func mustKey(t *testing.T) []byte {
	k, err := ParseKey(NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}
