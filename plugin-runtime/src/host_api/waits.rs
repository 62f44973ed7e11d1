//! The run's deadline and cancel handle ([`crate::deadline`]) applied to a run's
//! [`HostState`]: the store's epoch callback, and `wasi:io/poll` bounded by both.

use wasmtime::component::{Linker, Resource};
use wasmtime::{StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};

use super::HostState;

/// The `wasi:io/poll` interface wasmtime-wasi 48 links (its WIT package `wasi:io@0.2.12`);
/// components importing any 0.2.x version resolve to it.
const POLL_INTERFACE: &str = "wasi:io/poll@0.2.12";

/// The store's epoch callback: runs at every tick while the guest computes.
pub(crate) fn on_tick(store: StoreContextMut<'_, HostState>) -> wasmtime::Result<UpdateDeadline> {
    store.data().budget().check()?;
    Ok(UpdateDeadline::Continue(1))
}

/// Replaces wasmtime-wasi's blocking `poll` and `pollable.block` with versions bounded by the
/// run's deadline and cancel handle; a wait cut short traps the guest with [`Stopped`].
pub(crate) fn bound_poll(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL_INTERFACE)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, HostState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let budget = store.data().budget().clone();
            let table = store.data_mut().table();
            let ready = wasmtime_wasi::runtime::in_tokio(budget.bound(table.poll(pollables)))??;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
            let budget = store.data().budget().clone();
            let table = store.data_mut().table();
            wasmtime_wasi::runtime::in_tokio(budget.bound(table.block(pollable)))??;
            Ok(())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
