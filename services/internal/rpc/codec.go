package rpc

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// unpooledFrom is the size from which a message is marshalled into a slice
// of its own rather than a buffer from gRPC's pool. The pool keeps a
// returned buffer until two garbage collections have passed: for a
// snapshot of 100,000 pods (40 MiB) that is tens of MiB held for nothing
// after each send, and memory the watcher's budget has no room for. Below
// it, pooled buffers save allocations as gRPC means them to.
const unpooledFrom = 1 << 20

// messageCodec is gRPC's proto codec but for large messages, which it
// marshals unpooled (see unpooledFrom).
type messageCodec struct{ inner encoding.CodecV2 }

func newMessageCodec() messageCodec {
	return messageCodec{inner: encoding.GetCodecV2(grpcproto.Name)}
}

func (c messageCodec) Name() string { return c.inner.Name() }

func (c messageCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok || proto.Size(m) < unpooledFrom {
		return c.inner.Marshal(v)
	}
	// The sizes just computed are cached in the message: no second pass.
	b, err := proto.MarshalOptions{UseCachedSize: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (c messageCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return c.inner.Unmarshal(data, v)
}

// grpc-go turns any error of a codec's Unmarshal into codes.Internal, as if
// the server were at fault. A request whose bytes are not the method's
// message is the caller's fault: InvalidArgument. requestCodec, the
// servers' codec, decodes as the proto codec does but, instead of failing,
// resets the message and notes the error against it; the interceptors below
// find the note on the decoded request and answer InvalidArgument before
// any handler sees it.
type requestCodec struct{ messageCodec }

// undecodable maps a request message (by pointer) to the error decoding it.
// An entry lives from Unmarshal to the interceptor that takes it, within
// one call.
var undecodable sync.Map

func (c requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.inner.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if m, ok := v.(interface{ Reset() }); ok {
		m.Reset()
		undecodable.Store(v, err)
		return nil
	}
	return err
}

// decodeError returns the InvalidArgument status for a request that did not
// decode, or nil.
func decodeError(req any) error {
	e, ok := undecodable.LoadAndDelete(req)
	if !ok {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "request does not decode as the method's message: %v", e)
}

func undecodableUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := decodeError(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func undecodableStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, decodeCheckedStream{ss})
}

type decodeCheckedStream struct{ grpc.ServerStream }

func (s decodeCheckedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return decodeError(m)
}
