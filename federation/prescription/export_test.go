package prescription

// Refusal is refusal, as the issuer's server writes it: a refusal's
// status and reason, for tests that serve the issuer themselves.
func Refusal(err error) (byte, []byte) {
	status, reason := refusal(err)
	return status, []byte(reason)
}
