package bench

import "time"

// arrival is when request k (from 0) of an open loop of rate requests per
// second starting at start is due: start + k/rate, computed from k rather
// than by adding intervals, so rounding never accumulates.
func arrival(start time.Time, rate float64, k int64) time.Time {
	return start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
}
