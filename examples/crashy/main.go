// Command crashy is launch's example app for crash tests: a tiny HTTP server
// (socket activation like examples/hello, else $HOST:$PORT) that crashes on
// demand.
//
//	CRASH_ON_START=1   print "crashing at start" and exit 1 before serving
//	CRASH_AFTER_MS=N   serve, then exit 1 after N ms
//	CRASH_INSTANCE=k   crash as above only in the worker whose LAUNCH_INSTANCE is k
//	GET /crash         exit 1 at once
//	GET /              "crashy <pid>", with an X-Pid header
//
// It sends READY=1 to $NOTIFY_SOCKET once it serves. Unlike hello it does not
// drain: SIGTERM kills it at once, like a naive app.
package main

import (
	"cmp"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	log.SetFlags(0)
	inst, ok := os.LookupEnv("CRASH_INSTANCE")
	crash := !ok || inst == os.Getenv("LAUNCH_INSTANCE")
	if crash && os.Getenv("CRASH_ON_START") == "1" {
		fmt.Fprintln(os.Stderr, "crashing at start")
		os.Exit(1)
	}
	if ms, err := strconv.Atoi(os.Getenv("CRASH_AFTER_MS")); crash && err == nil {
		time.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
			log.Printf("crashing after %d ms", ms)
			os.Exit(1)
		})
	}

	pid := strconv.Itoa(os.Getpid())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pid", pid)
		fmt.Fprintf(w, "crashy %s\n", pid)
	})
	mux.HandleFunc("GET /crash", func(w http.ResponseWriter, r *http.Request) {
		log.Print("crashing on request")
		os.Exit(1)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ls, err := activation.Listeners()
	if err != nil {
		log.Fatal(err)
	}
	serving := 0
	for i, l := range ls {
		if l != nil {
			log.Printf("listening on fd %d", 3+i)
			go func() { log.Fatal(srv.Serve(l)) }()
			serving++
		}
	}
	if serving == 0 {
		addr := net.JoinHostPort(cmp.Or(os.Getenv("HOST"), "127.0.0.1"), cmp.Or(os.Getenv("PORT"), "8080"))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("listening on %s", l.Addr())
		go func() { log.Fatal(srv.Serve(l)) }()
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Printf("sd_notify: %v", err)
	}
	select {}
}
