// service1 as the grpc-go and net/http docs show it: a gRPC server with
// mTLS (RequireAndVerifyClientCert) for Service1/ProcessName, and a
// net/http handler for GET /api/v1/name. One slog JSON line per request.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"baselinego/internal/pb/service1pb"
	"baselinego/internal/setup"
)

type server struct {
	service1pb.UnimplementedService1Server
	log *slog.Logger
}

func (s *server) ProcessName(ctx context.Context, req *service1pb.ProcessNameRequest) (*service1pb.ProcessNameResponse, error) {
	requestID := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ids := md.Get("x-request-id"); len(ids) > 0 {
			requestID = ids[0]
		}
	}
	s.log.Info("grpc request", "method", "ProcessName", "request_id", requestID)
	// No ObjectId, as the original service1 sends none.
	return &service1pb.ProcessNameResponse{Name: strings.ToUpper(req.GetName())}, nil
}

func nameHandler(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		status := http.StatusOK
		var body any = map[string]string{"name": strings.ToUpper(name)}
		if name == "" {
			status = http.StatusBadRequest
			body = map[string]string{"error": "the 'name' parameter is required"}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
		log.Info("http request", "path", r.URL.Path, "status", status,
			"request_id", r.Header.Get("X-Request-ID"))
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
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	lis, err := net.Listen("tcp", setup.Addr("GRPC_PORT", "50051"))
	if err != nil {
		setup.Fatal(log, "gRPC listen", err)
	}
	s := grpc.NewServer(grpc.Creds(creds))
	service1pb.RegisterService1Server(s, &server{log: log})
	go func() {
		if err := s.Serve(lis); err != nil {
			setup.Fatal(log, "gRPC server", err)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/name", nameHandler(log))
	if err := http.ListenAndServe(setup.Addr("PORT", "8080"), mux); err != nil {
		setup.Fatal(log, "REST server", err)
	}
}
