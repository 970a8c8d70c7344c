//go:build integration

package driver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestNewerAgent plays an agent newer than the plugin's SDK: every request
// message, and every message inside it, carries a field the v1.6 SDK does
// not know. The plugin must ignore such fields and serve the task as usual.
func TestNewerAgent(t *testing.T) {
	b := newCheckedBed(t)
	h := b.harness(t, "")

	conn, err := grpc.NewClient(h.Target(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			withUnknownFields(req)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			return unknownFieldsStream{s}, err
		}))
	must.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	raw, err := drivers.NewDriverPlugin(nil, hclog.NewNullLogger()).GRPCClient(context.Background(), nil, conn)
	must.NoError(t, err)
	newer := raw.(drivers.DriverPlugin)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fp := firstFingerprint(ctx, t, newer)
	must.Eq(t, drivers.HealthStateHealthy, fp.Health, must.Sprint(fp.HealthDescription))

	task := newTask(t, sh("echo from-a-newer-agent; exit 7"))
	t.Cleanup(h.MkAllocDir(task, true))
	_, _, err = newer.StartTask(task)
	must.NoError(t, err)
	t.Cleanup(func() { _ = h.Impl().DestroyTask(task.ID, true) })
	exits, err := newer.WaitTask(ctx, task.ID)
	must.NoError(t, err)
	res := <-exits
	must.Eq(t, 7, res.ExitCode)
	eventually(t, "the task's output in its log", func() bool {
		return logs(t, task, "stdout") == "from-a-newer-agent\n"
	})
	st, err := newer.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateExited, st.State)
	must.NoError(t, newer.DestroyTask(task.ID, false))
	must.False(t, b.containerExists(t, containerID(task.Name, task.AllocID)))
	// the calls above really carried the fields: fingerprint, start (with
	// its task config and resources inside), wait, inspect and destroy
	must.GreaterEq(t, 10, int(unknownFieldsSent.Load()))
}

// unknownField is field 1999, far past any the SDK's messages use.
var unknownField = protowire.AppendString(protowire.AppendTag(nil, 1999, protowire.BytesType), "sent by a newer agent")

// unknownFieldsSent counts the messages that carried unknownField.
var unknownFieldsSent atomic.Int32

// withUnknownFields adds unknownField to msg and to every message it holds.
func withUnknownFields(msg any) {
	m, ok := msg.(protoadapt.MessageV1)
	if !ok {
		return
	}
	addUnknown(protoadapt.MessageV2Of(m).ProtoReflect())
}

func addUnknown(m protoreflect.Message) {
	unknownFieldsSent.Add(1)
	m.SetUnknown(append(m.GetUnknown(), unknownField...))
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				addUnknown(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
				addUnknown(e.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			addUnknown(v.Message())
		}
		return true
	})
}

// unknownFieldsStream adds unknownField to every message a stream sends.
type unknownFieldsStream struct{ grpc.ClientStream }

func (s unknownFieldsStream) SendMsg(m any) error {
	withUnknownFields(m)
	return s.ClientStream.SendMsg(m)
}
