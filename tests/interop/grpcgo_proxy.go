// SPDX-License-Identifier: MIT
// An ntun proxy written on grpc-go, an independent gRPC implementation, for interop tests of
// ntun-server's side of the reverse connection: it dials the server over mutual TLS and serves
// ntun.v1.Connector on the connection it dialed (grpc.Server.Serve on a listener that hands
// out that one connection), with grpc-go's keepalive enforcement: PINGs closer than -min-time
// without data or headers in between are strikes, the third ends the connection with GOAWAY
// ENHANCE_YOUR_CALM "too_many_pings" (grpc-go logs it at verbosity 2, which we turn on).
// When a connection ends it dials again, as ntun-proxy does.
//
// Built by tests/interop/test_grpcgo_keepalive.sh together with the code protoc generates
// from proto/ntun.proto (package main, GOPATH mode: Debian's golang-google-grpc-dev).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// oneConnListener hands out one connection, then blocks until it is closed.
type oneConnListener struct {
	conn   net.Conn
	once   sync.Once
	closed chan struct{}
	given  bool
	mu     sync.Mutex
}

type trackedConn struct {
	net.Conn
	l *oneConnListener
}

func (c *trackedConn) Close() error {
	c.l.once.Do(func() { close(c.l.closed) })
	return c.Conn.Close()
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.given {
		l.given = true
		l.mu.Unlock()
		return &trackedConn{l.conn, l}, nil
	}
	l.mu.Unlock()
	<-l.closed
	return nil, errors.New("connection closed")
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

type connector struct {
	UnimplementedConnectorServer
	id      string
	managed []string
}

// Control registers this proxy and logs what the server sends.
func (c *connector) Control(st Connector_ControlServer) error {
	err := st.Send(&ProxyEvent{Kind: &ProxyEvent_Register{Register: &Registration{
		ProxyId: c.id, ManagedCidr: c.managed, Version: "grpc-go-interop"}}})
	if err != nil {
		return err
	}
	for {
		ev, err := st.Recv()
		if err != nil {
			log.Printf("control ended: %v", err)
			return nil
		}
		if h := ev.GetHello(); h != nil {
			log.Printf("registered with server %s", h.ServerId)
		}
		if d := ev.GetDrain(); d != nil {
			log.Printf("server drains: %s", d.Reason)
		}
	}
}

// Dial connects to ntun-dst and carries the bytes both ways.
func (c *connector) Dial(st Connector_DialServer) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	dst := md.Get("ntun-dst")
	if len(dst) != 1 {
		return status.Error(codes.InvalidArgument, "no ntun-dst")
	}
	tc, err := net.DialTimeout("tcp", dst[0], 5*time.Second)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	defer tc.Close()
	if err := st.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	log.Printf("dial %s: connected", dst[0])
	up := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err == io.EOF {
				tc.(*net.TCPConn).CloseWrite()
				up <- nil
				return
			}
			if err != nil {
				up <- err
				return
			}
			if _, err := tc.Write(m.Data); err != nil {
				up <- err
				return
			}
		}
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := tc.Read(buf)
		if n > 0 {
			if serr := st.Send(&Chunk{Data: append([]byte(nil), buf[:n]...)}); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
	}
	if err := <-up; err != nil {
		log.Printf("dial %s: upstream ended: %v", dst[0], err)
		return err
	}
	log.Printf("dial %s: done", dst[0])
	return nil
}

func main() {
	server := flag.String("server", "", "ntun-server HOST:PORT")
	name := flag.String("server-name", "", "name the server certificate must have")
	cert := flag.String("cert", "", "proxy certificate")
	key := flag.String("key", "", "proxy key")
	ca := flag.String("ca", "", "CA certificate")
	id := flag.String("proxy-id", "", "proxy id")
	managed := flag.String("managed-cidr", "", "managed prefixes, comma-separated")
	minTime := flag.Duration("min-time", 5*time.Minute, "keepalive.EnforcementPolicy.MinTime")
	flag.Parse()

	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetOutput(os.Stdout)
	// Errors only (grpclog copies each to the lower severities' writers too), verbosity 2:
	// the too_many_pings GOAWAY is logged as an error only at that verbosity.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2WithVerbosity(ioutil.Discard, ioutil.Discard,
		os.Stdout, 2))

	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	pem, err := ioutil.ReadFile(*ca)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	host, _, _ := net.SplitHostPort(*server)
	if *name == "" {
		*name = host
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: *name,
		NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13}
	log.Printf("enforcement MinTime %v PermitWithoutStream false", *minTime)

	for {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", *server, cfg)
		if err != nil {
			log.Printf("dial %s: %v", *server, err)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		log.Printf("connected to %s (ALPN %q)", *server, tc.ConnectionState().NegotiatedProtocol)
		srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: *minTime, PermitWithoutStream: false}))
		RegisterConnectorServer(srv, &connector{id: *id, managed: strings.Split(*managed, ",")})
		l := &oneConnListener{conn: tc, closed: make(chan struct{})}
		err = srv.Serve(l)
		fmt.Fprintf(os.Stdout, "connection ended: %v\n", err)
		srv.Stop()
		time.Sleep(200 * time.Millisecond)
	}
}
