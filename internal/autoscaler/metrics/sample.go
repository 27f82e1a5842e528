package metrics

import "math"

// sampleSize is how many of a revision's pods the scraper asks, so that their mean stands
// for all of them: the sample size for estimating a population's mean at 95 % confidence
// (critical value z = 1.96), a margin of error e = 5 and an assumed variance σ² = 100, which
// is x = z²σ²/e² ≈ 15.4 pods for an unbounded population, corrected for a population of n
// pods to n·x / (n + x - 1). Three pods or fewer are all asked.
func sampleSize(pods int) int {
	const z, variance, margin = 1.96, 100.0, 5.0
	const unbounded = z * z * variance / (margin * margin)
	if pods <= 3 {
		return max(pods, 0)
	}
	n := float64(pods)
	return int(math.Ceil(n * unbounded / (n + unbounded - 1)))
}
