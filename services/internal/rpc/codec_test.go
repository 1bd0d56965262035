package rpc

import (
	"strings"
	"testing"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// TestLargeMessagesAreNotPooled: a message past unpooledFrom (a big
// snapshot) is marshalled into a slice the garbage collector frees once it
// is sent, not a pooled buffer that outlives the send; small ones still use
// the pool. Both round-trip.
func TestLargeMessagesAreNotPooled(t *testing.T) {
	c := newMessageCodec()
	big := &clusterv1.Snapshot{Region: "us-east-1"}
	for i := range 10_000 {
		big.Pods = append(big.Pods, &clusterv1.Pod{Namespace: "default", Name: strings.Repeat("p", 200), Uid: string(rune('a' + i%26))})
	}
	if proto.Size(big) < 2*unpooledFrom {
		t.Fatalf("the large message has %d bytes, want at least %d", proto.Size(big), 2*unpooledFrom)
	}
	small := &clusterv1.Snapshot{Region: "us-east-1", Pods: big.Pods[:100]}
	for _, tc := range []struct {
		name   string
		msg    *clusterv1.Snapshot
		pooled bool
	}{{"large", big, false}, {"small", small, true}} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := c.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			_, plain := data[0].(mem.SliceBuffer)
			if len(data) != 1 || plain == tc.pooled {
				t.Errorf("%d bytes marshalled into %d buffers of %T, want one %s", data.Len(), len(data), data[0],
					map[bool]string{true: "pooled buffer", false: "plain slice"}[tc.pooled])
			}
			got := &clusterv1.Snapshot{}
			if err := c.Unmarshal(data, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.msg) {
				t.Error("the message does not round-trip")
			}
			data.Free()
		})
	}
}
