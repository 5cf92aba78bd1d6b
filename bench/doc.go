// Package bench measures launch from the outside: load generation and
// scaling reports (the `launch bench` command, a later issue), and the
// scripts behind `make bench`. It imports no other package of launch.
package bench
