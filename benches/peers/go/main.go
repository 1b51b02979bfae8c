// Go's side of the peer comparison: `peer-go WORKLOAD N` or
// `peer-go echo ADDR`, per benches/peers/README.md.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func fail(what string) {
	fmt.Fprintln(os.Stderr, "wrong result:", what)
	os.Exit(1)
}

func perOp(d time.Duration, ops uint64) float64 {
	if ops == 0 {
		ops = 1
	}
	return float64(d.Nanoseconds()) / float64(ops)
}

func triangle(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return n * (n - 1) / 2
}

func spawn(n uint64) time.Duration {
	var wg sync.WaitGroup
	var sum atomic.Uint64
	start := time.Now()
	wg.Add(int(n))
	for i := uint64(0); i < n; i++ {
		go func(i uint64) {
			sum.Add(i)
			wg.Done()
		}(i)
	}
	wg.Wait()
	t := time.Since(start)
	if sum.Load() != triangle(n) {
		fail("spawn sum")
	}
	return t
}

func yieldSwitch(n uint64) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); i < n; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func pingPong(n uint64) time.Duration {
	ping, pong := make(chan uint64), make(chan uint64)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		ping <- i
		if <-pong != i {
			fail("ping-pong echo")
		}
	}
	t := time.Since(start)
	close(ping)
	return t
}

func mpmc(n uint64, capacity int) time.Duration {
	ch := make(chan uint64, capacity)
	sums := make(chan uint64, 4)
	var producers sync.WaitGroup
	start := time.Now()
	for p := uint64(0); p < 4; p++ {
		producers.Add(1)
		go func(p uint64) {
			defer producers.Done()
			for i := p; i < n; i += 4 {
				ch <- i
			}
		}(p)
	}
	for c := 0; c < 4; c++ {
		go func() {
			var s uint64
			for v := range ch {
				s += v
			}
			sums <- s
		}()
	}
	producers.Wait()
	close(ch)
	var sum uint64
	for c := 0; c < 4; c++ {
		sum += <-sums
	}
	t := time.Since(start)
	if sum != triangle(n) {
		fail("mpmc sum")
	}
	return t
}

func mutex(n uint64) time.Duration {
	each := n / 1000
	var mu sync.Mutex
	var count uint64
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < 1000; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); i < each; i++ {
				mu.Lock()
				count++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t := time.Since(start)
	if count != each*1000 {
		fail("mutex count")
	}
	return t
}

func select4(n uint64) time.Duration {
	var chans [4]chan uint64
	for i := range chans {
		chans[i] = make(chan uint64)
	}
	go func() {
		for i := uint64(0); i < n; i++ {
			chans[i%4] <- i
		}
	}()
	start := time.Now()
	var sum uint64
	for i := uint64(0); i < n; i++ {
		select {
		case v := <-chans[0]:
			sum += v
		case v := <-chans[1]:
			sum += v
		case v := <-chans[2]:
			sum += v
		case v := <-chans[3]:
			sum += v
		}
	}
	t := time.Since(start)
	if sum != triangle(n) {
		fail("select sum")
	}
	return t
}

const ringSize = 10000

func ring(n uint64) float64 {
	laps := (n + ringSize - 1) / ringSize
	if laps == 0 {
		laps = 1
	}
	first := make(chan uint64)
	prev := first
	for i := 1; i < ringSize; i++ {
		next := make(chan uint64)
		go func(from, to chan uint64) {
			for token := range from {
				to <- token + 1
			}
			close(to)
		}(prev, next)
		prev = next
	}
	start := time.Now()
	var token uint64
	for l := uint64(0); l < laps; l++ {
		first <- token
		token = <-prev
	}
	t := time.Since(start)
	if token != laps*(ringSize-1) {
		fail("ring token")
	}
	close(first)
	return perOp(t, laps*ringSize)
}

func skynet() time.Duration {
	var node func(num, size uint64, parent chan<- uint64)
	node = func(num, size uint64, parent chan<- uint64) {
		if size == 1 {
			parent <- num
			return
		}
		children := make(chan uint64)
		child := size / 10
		for i := uint64(0); i < 10; i++ {
			go node(num+i*child, child, children)
		}
		var sum uint64
		for i := 0; i < 10; i++ {
			sum += <-children
		}
		parent <- sum
	}
	start := time.Now()
	root := make(chan uint64)
	go node(0, 1000000, root)
	sum := <-root
	t := time.Since(start)
	if sum != 499999500000 {
		fail("skynet sum")
	}
	return t
}

func vmRSSKB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail("no /proc/self/status")
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmRSS:") {
			v, _ := strconv.ParseFloat(strings.Fields(s.Text())[1], 64)
			return v
		}
	}
	fail("no VmRSS")
	return 0
}

func rss(n uint64) float64 {
	before := vmRSSKB()
	release := make([]chan uint64, n)
	var started, done sync.WaitGroup
	var mu sync.Mutex
	var sum uint64
	started.Add(int(n))
	done.Add(int(n))
	for i := range release {
		release[i] = make(chan uint64)
		go func(c chan uint64) {
			started.Done()
			v := <-c
			mu.Lock()
			sum += v
			mu.Unlock()
			done.Done()
		}(release[i])
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond)
	grown := vmRSSKB() - before
	for i, c := range release {
		c <- uint64(i)
	}
	done.Wait()
	if sum != triangle(n) {
		fail("rss release sum")
	}
	return grown / float64(n)
}

func sleeps(n uint64) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(int(n))
	for i := uint64(0); i < n; i++ {
		go func() {
			defer wg.Done()
			time.Sleep(10 * time.Millisecond)
		}()
	}
	wg.Wait()
	t := time.Since(start)
	if t < 10*time.Millisecond {
		fail("sleeps too short")
	}
	return t
}

func echo(addr string) {
	runtime.GOMAXPROCS(1)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "go echo server on", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil || n == 0 {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}(conn)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: peer-go WORKLOAD N | peer-go echo ADDR (see benches/peers/README.md)")
		os.Exit(2)
	}
	workload, arg := os.Args[1], os.Args[2]
	if workload == "echo" {
		echo(arg)
		return
	}
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		os.Exit(2)
	}
	runtime.GOMAXPROCS(2)
	var value float64
	unit := "ns/op"
	switch workload {
	case "spawn":
		value = perOp(spawn(n), n)
	case "yield":
		value = perOp(yieldSwitch(n), 2*n)
	case "pingpong":
		value = perOp(pingPong(n), n)
	case "mpmc1024":
		value = perOp(mpmc(n, 1024), n)
	case "mpmc0":
		value = perOp(mpmc(n, 0), n)
	case "mutex":
		value = perOp(mutex(n), n)
	case "select4":
		value = perOp(select4(n), n)
	case "ring":
		value = ring(n)
	case "skynet":
		value, unit = float64(skynet().Microseconds())/1e3, "ms"
	case "rss":
		value, unit = rss(n), "KB"
	case "sleeps":
		value, unit = float64(sleeps(n).Microseconds())/1e3, "ms"
	default:
		os.Exit(2)
	}
	fmt.Printf("%s %.1f %s\n", workload, value, unit)
}
