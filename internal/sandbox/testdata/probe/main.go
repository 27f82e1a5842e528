// Command probe is the sandbox tests' helper, run inside containers:
//
//	probe get URL          print the body of a GET (exit 1 on error)
//	probe exit N           exit with status N
//	probe cat              copy stdin to stdout
//	probe write PATH BYTES write a file of BYTES bytes
//	probe read PATH        print a file
//	probe userns           try to make a user namespace (exit 1 with the error if refused)
//	probe stubborn         print "ready", print "got terminated" on each SIGTERM and keep running
//	probe log MIB          print MIB mebibytes of lines, one MiB every 20 ms, then "done", and keep running
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe get|exit|cat|write|stubborn ...")
	}
	switch os.Args[1] {
	case "get":
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, resp.Body)
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		os.Exit(n)
	case "cat":
		io.Copy(os.Stdout, os.Stdin)
	case "write":
		n, _ := strconv.Atoi(os.Args[3])
		if err := os.WriteFile(os.Args[2], make([]byte, n), 0o644); err != nil {
			fail(err.Error())
		}
	case "read":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		os.Stdout.Write(b)
	case "userns":
		if err := syscall.Unshare(syscall.CLONE_NEWUSER); err != nil {
			fail("unshare: " + err.Error())
		}
	case "log":
		n, _ := strconv.Atoi(os.Args[2])
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for i := 0; i < n; i++ {
			for j := 0; j < 1024; j++ {
				os.Stdout.Write(line)
			}
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Println("done")
		time.Sleep(time.Hour)
	case "stubborn":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("ready")
		for s := range sig {
			fmt.Println("got", s)
		}
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "probe:", msg)
	os.Exit(1)
}
