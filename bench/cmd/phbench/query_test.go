package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBlocksSplitEvenly(t *testing.T) {
	for _, tc := range []struct {
		n, size int
		want    []int
	}{
		{40, 20, []int{20, 20}},
		{200, 20, []int{20, 20, 20, 20, 20, 20, 20, 20, 20, 20}},
		{45, 20, []int{15, 15, 15}},
		{41, 20, []int{14, 14, 13}},
		{10, 20, []int{10}},
	} {
		got := blocks(tc.n, tc.size)
		assert.Equal(t, tc.want, got, "%d in blocks of %d", tc.n, tc.size)
	}
}
