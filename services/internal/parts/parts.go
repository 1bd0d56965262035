// Package parts splits a snapshot into parts and puts them back together,
// so a large one is marshalled and sent a part at a time (the watcher's
// stream to the planner, its StreamSnapshot): a 100,000-pod snapshot
// takes some 60 MiB marshalled whole, a part of 1,000 objects half a
// megabyte.
package parts

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// Objects is how many objects a part holds at most, by default.
const Objects = 1000

// Split splits a snapshot into parts of at most n objects (n > 0) that
// proto.Merge puts back together in order: the first part holds the
// scalars, and every part the next objects of each repeated field in turn.
// The parts share the snapshot's objects; an empty snapshot is one part.
func Split(s *clusterv1.Snapshot, n int) []*clusterv1.Snapshot {
	first := &clusterv1.Snapshot{}
	out := []*clusterv1.Snapshot{first}
	cur, room := first, n
	s.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !fd.IsList() {
			first.ProtoReflect().Set(fd, v)
			return true
		}
		list := v.List()
		for i := range list.Len() {
			if room == 0 {
				cur, room = &clusterv1.Snapshot{}, n
				out = append(out, cur)
			}
			cur.ProtoReflect().Mutable(fd).List().Append(list.Get(i))
			room--
		}
		return true
	})
	return out
}

// Count returns how many objects a snapshot (or part) holds.
func Count(s *clusterv1.Snapshot) int {
	n := 0
	s.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() {
			n += v.List().Len()
		}
		return true
	})
	return n
}

// Append adds a part to the parts received before it (dst): the objects of
// every repeated field after theirs (shared, not copied, unlike
// proto.Merge), and the scalars, which the first part carries.
func Append(dst, part *clusterv1.Snapshot) {
	d := dst.ProtoReflect()
	part.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !fd.IsList() {
			d.Set(fd, v)
			return true
		}
		list, src := d.Mutable(fd).List(), v.List()
		for i := range src.Len() {
			list.Append(src.Get(i))
		}
		return true
	})
}
