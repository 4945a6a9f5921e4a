package graph

import (
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/clickhouse"
	"github.com/heraldpush/herald/graph/model"
)

// Bounds of string inputs that have no bound of their own (tokens, person
// ids, JSON and templates have theirs). Each is documented in the README.
const (
	// maxNameLen bounds campaign and message names, in characters.
	maxNameLen = 255
	// maxBundleIDLen is Apple's limit on a bundle id, in bytes.
	maxBundleIDLen = 155
	// maxAPNSKeyIDLen bounds APNS key and team ids (Apple's are 10 characters).
	maxAPNSKeyIDLen = 64
	// maxCredentialBytes bounds a .p8 key, a certificate PEM and a service
	// account JSON (real ones are 0.3–4 KB).
	maxCredentialBytes = 16 << 10
)

// checkLen refuses s when it is longer than max characters.
func checkLen(field, s string, max int) error {
	if len(s) > max && utf8.RuneCountInString(s) > max {
		return badInput(field, "is %d characters, over the %d-character limit", utf8.RuneCountInString(s), max)
	}
	return nil
}

// checkBytes refuses s when it is longer than max bytes.
func checkBytes(field, s string, max int) error {
	if len(s) > max {
		return badInput(field, "is %d bytes, over the %d-byte limit", len(s), max)
	}
	return nil
}

// checkCredentialLengths bounds every field of setPushCredentials' input.
func checkCredentialLengths(in model.PushCredentialsInput) error {
	var checks []error
	if a := in.Apns; a != nil {
		checks = append(checks, checkBytes("input.apns.bundleId", a.BundleID, maxBundleIDLen),
			checkBytes("input.apns.keyId", strOr(a.KeyID), maxAPNSKeyIDLen), checkBytes("input.apns.teamId", strOr(a.TeamID), maxAPNSKeyIDLen),
			checkBytes("input.apns.p8", strOr(a.P8), maxCredentialBytes), checkBytes("input.apns.certPem", strOr(a.CertPem), maxCredentialBytes))
	}
	if f := in.Fcm; f != nil {
		checks = append(checks, checkBytes("input.fcm.serviceAccountJson", f.ServiceAccountJSON, maxCredentialBytes))
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkTime refuses a time that ClickHouse cannot store as given (see
// clickhouse.MinTime).
func checkTime(field string, t time.Time) error {
	if t.Before(clickhouse.MinTime) || t.After(clickhouse.MaxTime) {
		return badInput(field, "%s is outside the supported range %s to %s", t.UTC().Format(time.RFC3339Nano),
			clickhouse.MinTime.Format(time.RFC3339), clickhouse.MaxTime.Format(time.RFC3339))
	}
	return nil
}

// checkOptTime is checkTime for an optional argument.
func checkOptTime(field string, t *time.Time) error {
	if t == nil {
		return nil
	}
	return checkTime(field, *t)
}
