package main

import (
	"context"
	"errors"
)

func runStatus(ctx context.Context, env *environment, args []string) error {
	return errors.New("status: not implemented yet")
}

func runPublish(ctx context.Context, env *environment, args []string) error {
	return errors.New("publish: not implemented yet")
}

func runKeys(ctx context.Context, env *environment, args []string) error {
	return errors.New("keys: not implemented yet")
}

func runDeadletter(ctx context.Context, env *environment, args []string) error {
	return errors.New("deadletter: not implemented yet")
}
