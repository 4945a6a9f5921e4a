package graph

import (
	"context"
	"errors"

	"github.com/heraldpush/herald/clickhouse"
)

// DeletePerson removes a person: each of their devices is marked removed
// (as removeDevice does, under the same lock), then the person's row is
// deleted, so person(id) is NOT_FOUND afterwards. Deliveries and events
// already recorded stay (they are history). An unknown person is NOT_FOUND.
func (r *Resolver) DeletePerson(ctx context.Context, personID string) error {
	ws, err := workspace(ctx)
	if err != nil {
		return err
	}
	if err := validPersonID("personId", personID); err != nil {
		return err
	}
	if _, err := r.Store.Person(ctx, ws, personID); errors.Is(err, clickhouse.ErrNotFound) {
		return notFound("person", personID)
	} else if err != nil {
		return err
	}
	if err := r.removeDevices(ctx, ws, personID); err != nil {
		return err
	}
	return r.Store.DeletePerson(ctx, ws, personID)
}

// removeDevices marks every current device of a person removed.
func (r *Resolver) removeDevices(ctx context.Context, ws, personID string) error {
	devices, err := r.Store.Devices(ctx, ws, personID)
	if err != nil {
		return err
	}
	for _, d := range devices {
		if err := r.putDeviceLocked(ctx, d, true); err != nil {
			return err
		}
	}
	return nil
}

// putDeviceLocked writes a device version (removed or not) under its lock.
func (r *Resolver) putDeviceLocked(ctx context.Context, d clickhouse.Device, removed bool) error {
	unlock, err := r.lockDevice(ctx, d.WorkspaceID, d.PersonID, d.Token)
	if err != nil {
		return err
	}
	defer unlock()
	d.Removed = removed
	return r.Store.PutDevice(ctx, d)
}

// MergePeople merges the secondary person into the primary, as Customer.io's
// merge_customers: attributes the primary lacks are copied from the
// secondary (the primary's value wins where both have one; the primary's
// unsubscribed flag stays), the secondary's devices move to the primary
// (keeping their platform, last used time, attributes and send state), and
// the secondary is deleted. Both must exist (else NOT_FOUND) and differ.
// The secondary's past deliveries and events stay under its id.
func (r *Resolver) MergePeople(ctx context.Context, primaryID, secondaryID string) error {
	ws, err := workspace(ctx)
	if err != nil {
		return err
	}
	if err := validPersonID("primary.id", primaryID); err != nil {
		return err
	}
	if err := validPersonID("secondary.id", secondaryID); err != nil {
		return err
	}
	if primaryID == secondaryID {
		return badInput("secondary.id", "is the primary; merge two different people")
	}
	primary, err := r.Store.Person(ctx, ws, primaryID)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return notFound("person", primaryID)
	} else if err != nil {
		return err
	}
	secondary, err := r.Store.Person(ctx, ws, secondaryID)
	if errors.Is(err, clickhouse.ErrNotFound) {
		return notFound("person", secondaryID)
	} else if err != nil {
		return err
	}
	attrs := decodeJSON(primary.Attributes)
	for k, v := range decodeJSON(secondary.Attributes) {
		if _, ok := attrs[k]; !ok {
			attrs[k] = v
		}
	}
	if primary.Attributes, err = encodeJSON("primary.attributes", attrs); err != nil {
		return err
	}
	if err := r.Store.PutPerson(ctx, primary); err != nil {
		return err
	}
	devices, err := r.Store.Devices(ctx, ws, secondaryID)
	if err != nil {
		return err
	}
	for _, d := range devices {
		moved := d
		moved.PersonID = primaryID
		if err := r.putDeviceLocked(ctx, moved, false); err != nil {
			return err
		}
		if err := r.putDeviceLocked(ctx, d, true); err != nil {
			return err
		}
	}
	return r.Store.DeletePerson(ctx, ws, secondaryID)
}
