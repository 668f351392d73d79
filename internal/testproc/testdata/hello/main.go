// Command hello prints a line and exits: the program the Builder tests build.
package main

import "fmt"

func main() { fmt.Println("hello") }
