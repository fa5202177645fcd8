package main

import (
	"context"
	"errors"
)

func runRebuild(ctx context.Context, env *environment, args []string) error {
	return errors.New("rebuild: not implemented yet")
}

func runVerify(ctx context.Context, env *environment, args []string) error {
	return errors.New("verify: not implemented yet")
}
