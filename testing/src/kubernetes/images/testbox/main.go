// Command testbox is the test node's workload image: one static binary, several roles.
//
//	testbox serve [-port 8080] [-term-delay 2s]  HTTP server: /healthz, / (hostname); on SIGTERM
//	                                             logs "got SIGTERM", waits term-delay, exits 0
//	testbox get URL                              GET URL, print status and body; exit 1 unless 2xx
//	testbox whoami                               in-cluster: POST a SelfSubjectReview with the
//	                                             ServiceAccount token, print the user name
//	testbox routes                               print the IPv4 routing table (/proc/net/route)
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testbox serve|get|whoami|routes")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "get":
		if len(os.Args) != 3 {
			fail("usage: testbox get URL")
		}
		get(os.Args[2])
	case "whoami":
		whoami()
	case "routes":
		b, err := os.ReadFile("/proc/net/route")
		if err != nil {
			fail(err.Error())
		}
		os.Stdout.Write(b)
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "testbox:", msg)
	os.Exit(1)
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	port := fs.Int("port", 8080, "listen port")
	termDelay := fs.Duration("term-delay", 2*time.Second, "how long to keep serving after SIGTERM")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, host) })
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fail(err.Error())
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-signals
		fmt.Printf("got %v; exiting in %v\n", s, *termDelay)
		time.Sleep(*termDelay)
		fmt.Println("exiting")
		os.Exit(0)
	}()
	fmt.Printf("serving on :%d as %s\n", *port, host)
	if err := http.Serve(ln, mux); err != nil {
		fail(err.Error())
	}
}

func get(url string) {
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		fail(err.Error())
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Printf("HTTP %d\n%s", res.StatusCode, body)
	if res.StatusCode/100 != 2 {
		os.Exit(1)
	}
}

func whoami() {
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	token, err := os.ReadFile(dir + "token")
	if err != nil {
		fail(err.Error())
	}
	caPem, err := os.ReadFile(dir + "ca.crt")
	if err != nil {
		fail(err.Error())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPem) {
		fail("no certificate in " + dir + "ca.crt")
	}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	c := http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	req, _ := http.NewRequest("POST", "https://"+host+"/apis/authentication.k8s.io/v1/selfsubjectreviews", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		fail(err.Error())
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		fail(fmt.Sprintf("HTTP %d from %s: %s", res.StatusCode, host, out))
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &review); err != nil {
		fail(err.Error())
	}
	fmt.Printf("user=%s via %s\n", review.Status.UserInfo.Username, host)
}
