package provisioning

// freeIndex finds, in node order, the next open node whose free CPU and
// memory may hold a request and whose zones meet a mask: a segment tree of
// per-range maxima (and unions of zones), so that runs of nodes without
// room, or in other zones, are skipped in logarithmic time.
type freeIndex struct {
	size     int // leaves, a power of two
	cpu, mem []int64
	zones    []uint64
}

const closed = -1

func (f *freeIndex) grow(n int) {
	size := max(f.size, 64)
	for size < n {
		size *= 2
	}
	if size == f.size {
		return
	}
	cpu, mem, zones := make([]int64, 2*size), make([]int64, 2*size), make([]uint64, 2*size)
	for i := range cpu {
		cpu[i], mem[i] = closed, closed
	}
	for i := 0; i < f.size; i++ {
		cpu[size+i], mem[size+i], zones[size+i] = f.cpu[f.size+i], f.mem[f.size+i], f.zones[f.size+i]
	}
	for i := size - 1; i >= 1; i-- {
		cpu[i], mem[i], zones[i] = max(cpu[2*i], cpu[2*i+1]), max(mem[2*i], mem[2*i+1]), zones[2*i]|zones[2*i+1]
	}
	f.size, f.cpu, f.mem, f.zones = size, cpu, mem, zones
}

// clone returns an independent copy.
func (f *freeIndex) clone() freeIndex {
	return freeIndex{size: f.size, cpu: append([]int64(nil), f.cpu...), mem: append([]int64(nil), f.mem...), zones: append([]uint64(nil), f.zones...)}
}

// set records node i's free CPU and memory (closed for a full node) and the
// zones it is or may end up in.
func (f *freeIndex) set(i int, cpu, mem int64, zones uint64) {
	if i >= f.size {
		f.grow(i + 1)
	}
	j := f.size + i
	f.cpu[j], f.mem[j], f.zones[j] = cpu, mem, zones
	for j /= 2; j >= 1; j /= 2 {
		c, m, z := max(f.cpu[2*j], f.cpu[2*j+1]), max(f.mem[2*j], f.mem[2*j+1]), f.zones[2*j]|f.zones[2*j+1]
		if c == f.cpu[j] && m == f.mem[j] && z == f.zones[j] {
			break
		}
		f.cpu[j], f.mem[j], f.zones[j] = c, m, z
	}
}

func (f *freeIndex) match(j int, cpu, mem int64, zones uint64) bool {
	return f.cpu[j] >= cpu && f.mem[j] >= mem && f.zones[j]&zones != 0
}

// next returns the first node at or after from that may have cpu and mem
// free in one of the zones, or -1. It walks up from the leaf and back down,
// so scanning node after node costs little more than the nodes it returns.
func (f *freeIndex) next(from int, cpu, mem int64, zones uint64) int {
	if from >= f.size {
		return -1
	}
	j := f.size + from
	if f.match(j, cpu, mem, zones) {
		return from
	}
	for {
		for j > 1 && (j%2 == 1 || !f.match(j+1, cpu, mem, zones)) {
			j /= 2
		}
		if j <= 1 {
			return -1
		}
		j++
		for j < f.size {
			switch {
			case f.match(2*j, cpu, mem, zones):
				j = 2 * j
			case f.match(2*j+1, cpu, mem, zones):
				j = 2*j + 1
			default:
				goto climb // both halves fall short in one resource or the other
			}
		}
		return j - f.size
	climb:
	}
}
