package proxy

import "time"

// pick chooses a backend for new work and counts it in flight there; nil
// if none is in rotation (or all are in tried). The caller must release it.
// hash != 0 selects sticky placement.
func (p *Proxy) pick(hash uint64, tried []*backend) *backend {
	for {
		b := p.choose(*p.rotation.Load(), hash, tried)
		if b == nil {
			return nil
		}
		b.inflight.Add(1)
		// Drain stores the state, then reads inflight; we add to inflight,
		// then read the state: one of the two sees the other.
		if backendState(b.state.Load()) == stateActive {
			return b
		}
		b.release()
	}
}

// choose applies the strategy to the backends of rot that are healthy
// and not in tried; if none is, to the ones passively marked down (a
// connect failure may have been a blip, and trying costs one fast
// refusal). Backends failing active checks are never chosen.
func (p *Proxy) choose(rot []*backend, hash uint64, tried []*backend) *backend {
	n := len(rot)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	start := int(p.next.Add(1) % uint64(n))
	var best, bestDown *backend
	var bestScore, bestDownScore uint64
	for i := range n {
		b := rot[(start+i)%n]
		if b.failing.Load() || backendState(b.state.Load()) != stateActive || contains(tried, b) {
			continue
		}
		down := b.downUntil.Load() > now
		var score uint64 // higher wins
		switch {
		case hash != 0:
			score = mix(hash ^ uint64(b.id)*0x9e3779b97f4a7c15)
		case p.cfg.Strategy == StrategyRoundRobin:
			if !down {
				return b // the first healthy one after the cursor
			}
			score = 1
		default:
			score = ^uint64(b.inflight.Load())
		}
		if down {
			if bestDown == nil || score > bestDownScore {
				bestDown, bestDownScore = b, score
			}
		} else if best == nil || score > bestScore {
			best, bestScore = b, score
		}
	}
	if best == nil {
		return bestDown
	}
	return best
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// mix is splitmix64's finalizer: rendezvous scores from (client, backend).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
