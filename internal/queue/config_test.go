package queue

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{{
		name: "defaults",
		env:  map[string]string{},
		want: Config{ServingPort: 8012, AdminPort: 8022, MetricsPort: 9090, UserMetricsPort: 9091, UserPort: 8080,
			Timeout: 300 * time.Second, DrainTimeout: 300 * time.Second, QuietPeriod: defaultQuietPeriod},
	}, {
		name: "what the revision's Deployment sets",
		env: map[string]string{
			"SERVING_NAMESPACE": "default", "SERVING_SERVICE": "hello", "SERVING_CONFIGURATION": "hello",
			"SERVING_REVISION": "hello-00001", "SERVING_POD": "hello-00001-deployment-abc",
			"QUEUE_SERVING_PORT": "9012", "QUEUE_ADMIN_PORT": "9022", "QUEUE_METRICS_PORT": "9190", "USER_PORT": "3000",
			"CONTAINER_CONCURRENCY": "4", "REVISION_TIMEOUT_SECONDS": "60",
			"REVISION_RESPONSE_START_TIMEOUT_SECONDS": "10", "REVISION_IDLE_TIMEOUT_SECONDS": "5",
			"USER_PORT_PROTOCOL": "h2c", "QUEUE_H2C_PORT": "9013",
			"SERVING_READINESS_PROBE": `{"httpGet":{"path":"/healthz","port":3000},"periodSeconds":2}`,
		},
		want: Config{ServingPort: 9012, H2CPort: 9013, AdminPort: 9022, MetricsPort: 9190, UserMetricsPort: 9091, UserPort: 3000,
			UserProtocol: "h2c", ContainerConcurrency: 4,
			Timeout: time.Minute, ResponseStartTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second,
			ReadinessProbes: []*corev1.Probe{{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(3000)}},
				PeriodSeconds: 2,
			}},
			DrainTimeout: time.Minute, QuietPeriod: defaultQuietPeriod,
			Namespace: "default", Service: "hello", Configuration: "hello", Revision: "hello-00001", Pod: "hello-00001-deployment-abc"},
	}, {
		name: "a list of probes; a timeout of 0 is the default",
		env:  map[string]string{"SERVING_READINESS_PROBE": `[{"tcpSocket":{"port":8080}},{"exec":{"command":["true"]}}]`, "REVISION_TIMEOUT_SECONDS": "0"},
		want: Config{ServingPort: 8012, AdminPort: 8022, MetricsPort: 9090, UserMetricsPort: 9091, UserPort: 8080,
			Timeout: 300 * time.Second, DrainTimeout: 300 * time.Second, QuietPeriod: defaultQuietPeriod,
			ReadinessProbes: []*corev1.Probe{
				{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
				{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			}},
	},
		{name: "port", env: map[string]string{"USER_PORT": "http"}, wantErr: `USER_PORT: "http" is not a port`},
		{name: "concurrency", env: map[string]string{"CONTAINER_CONCURRENCY": "-1"}, wantErr: `CONTAINER_CONCURRENCY: "-1" is not a concurrency (0 or more)`},
		{name: "seconds", env: map[string]string{"REVISION_IDLE_TIMEOUT_SECONDS": "1m"}, wantErr: `REVISION_IDLE_TIMEOUT_SECONDS: "1m" is not a number of seconds`},
		{name: "protocol", env: map[string]string{"USER_PORT_PROTOCOL": "grpc"}, wantErr: `USER_PORT_PROTOCOL: "grpc" is neither "http1" nor "h2c"`},
		{name: "probe", env: map[string]string{"SERVING_READINESS_PROBE": "{"}, wantErr: `SERVING_READINESS_PROBE: decoding probe: unexpected end of JSON input`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
