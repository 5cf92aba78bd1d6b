// Command proxydrv runs balancer/proxy alone, for bench/proxy.sh: it listens
// on -listen and forwards to the -backends, as launch's master will in
// `balance: proxy`.
//
//	proxydrv -listen 127.0.0.1:18210 -backends 127.0.0.1:18201,127.0.0.1:18202 [-protocol tcp] [-cpuprofile f]
//
// SIGINT or SIGTERM stops it (and writes the CPU profile, if asked for).
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/launch-go/launch/balancer/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18210", "address to accept on")
	backends := flag.String("backends", "", "comma-separated backend addresses (host:port, or unix:/path)")
	protocol := flag.String("protocol", "http", "http or tcp")
	strategy := flag.String("strategy", "least", "least or round_robin")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until stopped")
	flag.Parse()
	log.SetFlags(0)

	p, err := proxy.New(proxy.Config{Protocol: *protocol, Strategy: *strategy, Logf: log.Printf})
	if err != nil {
		log.Fatal(err)
	}
	for i, b := range strings.Split(*backends, ",") {
		if path, ok := strings.CutPrefix(b, "unix:"); ok {
			p.Add(i, "unix", path)
		} else if b != "" {
			p.Add(i, "tcp", b)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		p.Close()
	}()
	log.Printf("proxydrv: %s on %s -> %s", *protocol, ln.Addr(), *backends)
	if err := p.Serve(ln); err != nil {
		log.Print(err)
	}
}
