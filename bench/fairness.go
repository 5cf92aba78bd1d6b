package bench

import (
	"slices"
	"strconv"
	"strings"
)

// Jain returns Jain's fairness index of the per-worker counts,
// (Σx)² / (n·Σx²): 1 when every worker served the same, 1/n when one
// served everything. workers is how many workers there were (some may
// have served nothing); when it is below len(counts), len(counts) is
// used. It returns 0 for no counts.
func Jain(counts map[string]int64, workers int) float64 {
	if workers < len(counts) {
		workers = len(counts)
	}
	var sum, sq float64
	for _, c := range counts {
		sum += float64(c)
		sq += float64(c) * float64(c)
	}
	if sq == 0 || workers == 0 {
		return 0
	}
	return sum * sum / (float64(workers) * sq)
}

// Fairness is Jain's index over the answers that named their worker (an
// X-Pid header), and false when none did: the app does not say which
// worker answered, so fairness is unknown.
func Fairness(perPID map[string]int64, workers int) (float64, bool) {
	known := make(map[string]int64, len(perPID))
	for pid, n := range perPID {
		if pid != "" && n > 0 {
			known[pid] = n
		}
	}
	if len(known) == 0 {
		return 0, false
	}
	return Jain(known, workers), true
}

// Shares formats per-worker counts as whole percentages, largest first:
// "52/48".
func Shares(counts map[string]int64) string {
	var total int64
	vals := make([]int64, 0, len(counts))
	for _, c := range counts {
		total += c
		vals = append(vals, c)
	}
	slices.Sort(vals)
	slices.Reverse(vals)
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strconv.Itoa(int(float64(v) * 100 / float64(max(total, 1))))
	}
	return strings.Join(parts, "/")
}
