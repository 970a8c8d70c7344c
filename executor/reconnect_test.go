package executor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// These tests run the exit and OOM watchers against a gRPC server on a unix
// socket that speaks containerd's task, event and health APIs and is stopped
// and started again, as containerd is when it restarts under running tasks.

// apiServer answers Wait and Subscribe with what its test tells it to.
type apiServer struct {
	tasksapi.UnimplementedTasksServer
	eventsapi.UnimplementedEventsServer

	waits      chan *tasksapi.WaitRequest
	subscribes chan *eventsapi.SubscribeRequest
	wait       func(context.Context) (*tasksapi.WaitResponse, error)
	subscribe  func(eventsapi.Events_SubscribeServer) error
}

func (s *apiServer) Wait(ctx context.Context, req *tasksapi.WaitRequest) (*tasksapi.WaitResponse, error) {
	s.waits <- req
	return s.wait(ctx)
}

func (s *apiServer) Subscribe(req *eventsapi.SubscribeRequest, stream eventsapi.Events_SubscribeServer) error {
	s.subscribes <- req
	return s.subscribe(stream)
}

func blockUntilStopped(ctx context.Context) (*tasksapi.WaitResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// serve starts a server on sock; stop ends it hard, like a killed daemon.
func serve(t *testing.T, sock string, api *apiServer) (stop func()) {
	t.Helper()
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tasksapi.RegisterTasksServer(srv, api)
	eventsapi.RegisterEventsServer(srv, api)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

func newAPI() *apiServer {
	return &apiServer{
		waits:      make(chan *tasksapi.WaitRequest, 16),
		subscribes: make(chan *eventsapi.SubscribeRequest, 16),
		wait:       blockUntilStopped,
		subscribe: func(stream eventsapi.Events_SubscribeServer) error {
			<-stream.Context().Done()
			return stream.Context().Err()
		},
	}
}

// noMetricsTask is a task whose cgroup counters are unavailable, so that an
// OOM kill can only be learnt from the event.
type noMetricsTask struct{ client.Task }

func (noMetricsTask) Metrics(context.Context) (*types.Metric, error) {
	return nil, errdefs.ErrNotFound
}

func testClient(t *testing.T, sock string) *client.Client {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithConn(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func received[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s", what)
	}
	var zero T
	return zero
}

// watchedTask serves a fake containerd API on a socket of the test's own
// and returns task web-1 of a runtime on it; its watchers stop when the test
// ends, and stop ends the API.
func watchedTask(t *testing.T) (sock string, api *apiServer, stop func(), task *Task) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "api.sock")
	api = newAPI()
	stop = serve(t, sock, api)
	task = newTask(New(testClient(t, sock), "nomad", nil), "web-1", nil, noMetricsTask{})
	t.Cleanup(task.stopWatch)
	return sock, api, stop, task
}

// awaitExit waits up to 30s for the task's exit and fails with msg without
// one.
func awaitExit(t *testing.T, task *Task, msg string) {
	t.Helper()
	select {
	case <-task.Done():
	case <-time.After(30 * time.Second):
		t.Fatal(msg)
	}
}

func TestExitWatchSurvivesDaemonRestart(t *testing.T) {
	sock, first, stop, task := watchedTask(t)
	task.startWatch()
	if req := received(t, first.waits, "wait on the first daemon"); req.ContainerID != "web-1" {
		t.Fatalf("wait for %q", req.ContainerID)
	}

	stop()
	select {
	case <-task.Done():
		t.Fatalf("losing the daemon was reported as an exit: %+v", task.Exit())
	case <-time.After(300 * time.Millisecond):
	}

	second := newAPI()
	exitedAt := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	second.wait = func(context.Context) (*tasksapi.WaitResponse, error) {
		return &tasksapi.WaitResponse{ExitStatus: 143, ExitedAt: timestamppb.New(exitedAt)}, nil
	}
	serve(t, sock, second)
	received(t, second.waits, "wait on the restarted daemon")
	awaitExit(t, task, "exit not reported after the daemon came back")
	if es := task.Exit(); es.Code != 143 || es.Signal != 15 || !es.ExitedAt.Equal(exitedAt) || es.Err != nil || es.OOMKilled {
		t.Fatalf("exit = %+v", es)
	}
}

func TestExitWatchTaskGone(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	api := newAPI()
	api.wait = func(context.Context) (*tasksapi.WaitResponse, error) {
		return nil, errgrpc.ToGRPC(errdefs.ErrNotFound)
	}
	serve(t, sock, api)
	task := newTask(New(testClient(t, sock), "nomad", nil), "web-1", nil, noMetricsTask{})
	t.Cleanup(task.stopWatch)
	task.startWatch()
	awaitExit(t, task, "no exit for a task that is gone")
	if es := task.Exit(); !errdefs.IsNotFound(es.Err) || es.Code != int(client.UnknownExitStatus) {
		t.Fatalf("exit = %+v", es)
	}
}

func TestOOMSubscriptionSurvivesDaemonRestart(t *testing.T) {
	sock, first, stop, task := watchedTask(t)
	task.subscribeOOM()
	req := received(t, first.subscribes, "subscription")
	if len(req.Filters) != 1 {
		t.Fatalf("filters = %q", req.Filters)
	}
	for _, want := range []string{`namespace=="nomad"`, `topic=="/tasks/oom"`, `event.container_id=="web-1"`} {
		if !strings.Contains(req.Filters[0], want) {
			t.Errorf("filter %q lacks %s", req.Filters[0], want)
		}
	}

	stop()
	second := newAPI()
	oom, err := typeurl.MarshalAnyToProto(&apievents.TaskOOM{ContainerID: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	second.subscribe = func(stream eventsapi.Events_SubscribeServer) error {
		if err := stream.Send(&types.Envelope{Timestamp: timestamppb.Now(), Namespace: "nomad", Topic: "/tasks/oom", Event: oom}); err != nil {
			return err
		}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	serve(t, sock, second)
	received(t, second.subscribes, "subscription on the restarted daemon")
	select {
	case <-task.oomObserved:
	case <-time.After(30 * time.Second):
		t.Fatal("oom event after the restart not seen")
	}

	// The exit that follows carries the OOM kill.
	second.wait = func(context.Context) (*tasksapi.WaitResponse, error) {
		return &tasksapi.WaitResponse{ExitStatus: 137, ExitedAt: timestamppb.Now()}, nil
	}
	task.startWatch()
	awaitExit(t, task, "no exit")
	if es := task.Exit(); !es.OOMKilled || es.Signal != 9 {
		t.Fatalf("exit = %+v", es)
	}
	// Recording the exit ends the subscription.
	select {
	case <-task.watchCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watchers still running after the exit")
	}
}

func TestReconnectBackoff(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	d := reconnectBackoffMin
	for i, w := range want {
		if d = nextBackoff(d); d != w {
			t.Fatalf("step %d: backoff %s, want %s", i, d, w)
		}
	}

	sock := filepath.Join(t.TempDir(), "api.sock")
	serve(t, sock, newAPI())
	r := New(testClient(t, sock), "nomad", nil)
	backoff := reconnectBackoffMin
	if !r.awaitReconnect(context.Background(), &backoff) || backoff != 2*reconnectBackoffMin {
		t.Fatalf("reconnect with the daemon up failed; backoff now %s", backoff)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r.awaitReconnect(ctx, &backoff) {
		t.Fatal("reconnect reported success after its context ended")
	}
}
