// service2 as the grpc-go and net/http docs show it: a net/http handler for
// GET /api/v1/say-hello that calls service1 through one grpc.NewClient made
// at start, with mTLS, a 10 s timeout per call and the request id in the
// call's metadata. One slog JSON line per request.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"baselinego/internal/pb/service1pb"
	"baselinego/internal/setup"
)

const callTimeout = 10 * time.Second

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func sayHello(log *slog.Logger, client service1pb.Service1Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		requestID := r.Header.Get("X-Request-ID")
		if requestID == "" {
			requestID = rand.Text()
		}
		w.Header().Set("X-Request-ID", requestID)
		name := r.URL.Query().Get("name")
		code := http.StatusOK
		switch {
		case name == "":
			code = http.StatusBadRequest
			writeJSON(w, code, map[string]string{"error": "the 'name' parameter is required"})
		default:
			ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", requestID)
			reply, err := client.ProcessName(ctx, &service1pb.ProcessNameRequest{Name: name})
			if err != nil {
				code = http.StatusBadGateway
				if status.Code(err) == codes.DeadlineExceeded {
					code = http.StatusGatewayTimeout
				}
				writeJSON(w, code, map[string]string{"error": "service1 failed"})
				log.Error("service1 call failed", "error", err, "request_id", requestID)
				break
			}
			writeJSON(w, code, "Hello, "+reply.GetName()+"!")
		}
		log.Info("http request", "path", r.URL.Path, "status", code, "request_id", requestID)
	}
}

func main() {
	log := setup.Logger()
	cert, pool, err := setup.TLSFiles()
	if err != nil {
		setup.Fatal(log, "TLS", err)
	}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   setup.Env("TLS_SERVER_NAME", "service1"),
	})
	conn, err := grpc.NewClient(setup.Env("SERVICE1_CHANNEL", "127.0.0.1:50051"),
		grpc.WithTransportCredentials(creds))
	if err != nil {
		setup.Fatal(log, "gRPC client", err)
	}
	defer conn.Close()
	client := service1pb.NewService1Client(conn)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/say-hello", sayHello(log, client))
	if err := http.ListenAndServe(setup.Addr("PORT", "8081"), mux); err != nil {
		setup.Fatal(log, "REST server", err)
	}
}
