//go:build !linux

package render

import "time"

// threadCPU is not available here: budgets measure wall time instead.
func threadCPU() (time.Duration, bool) { return 0, false }
