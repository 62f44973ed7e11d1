//! The imports through which a guest hands the host its largest values (log lines, events,
//! notifications, store values, partner requests), linked by hand instead of by `bindgen!`.
//!
//! Generated bindings lift every `string` and `list<u8>` argument into a Rust value before the
//! host function runs, so a guest could make the host copy up to its whole linear memory per
//! call. These take [`WasmStr`] and [`WasmList`] instead: views into the guest's memory, read
//! in place (UTF-8 text is borrowed, not copied), sized against the run's budget and the
//! import's own limits, and copied only once they are accepted, at most what the host keeps.
//! A hand-over that does not fit ends the run with an [`super::OverBudget`] trap. `signing`'s
//! data is read in place too, and never copied. The other imports (config, records, clock)
//! take small arguments and are linked from `bindgen!`.
//!
//! Every interface is linked under each version of [`crate::WIT_VERSIONS`] that has it, with
//! the same host functions: a version includes the interfaces of the one before unchanged.

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, HasSelf, Lift, Linker, WasmList, WasmStr};

use super::{HostState, MAX_EVENTS, check_notification};
use crate::bindings::outbound::{Credential, CredentialPlacement, Method, Request};
use crate::bindings::types::{HostError, Level, Notification};
use crate::bindings::{clock, config, records, types};

/// Headers a partner request may carry.
const MAX_HEADERS: usize = 64;
/// Entries a notification's data may hold (as [`super::check_notification`] requires).
const MAX_NOTIFICATION_DATA: usize = 32;

type Store<'a> = StoreContextMut<'a, HostState>;

/// `outbound.request`, as it lies in the guest's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RequestView {
    method: Method,
    url: WasmStr,
    headers: WasmList<(WasmStr, WasmStr)>,
    body: WasmList<u8>,
    credential: Option<CredentialView>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct CredentialView {
    handle: WasmStr,
    placement: PlacementView,
}

#[derive(ComponentType, Lift)]
#[component(variant)]
enum PlacementView {
    #[component(name = "bearer")]
    Bearer,
    #[component(name = "header")]
    Header(WasmStr),
}

/// `types.notification`, as it lies in the guest's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct NotificationView {
    channel: WasmStr,
    recipient: WasmStr,
    template: WasmStr,
    data: WasmList<(WasmStr, WasmStr)>,
}

/// The longest credential handle `signing` reads.
const MAX_HANDLE_BYTES: usize = 128;

/// Links every import of the `imports` world into `linker`, at every version.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for version in crate::WIT_VERSIONS {
        add_version_to_linker(linker, version)?;
    }
    Ok(())
}

/// Links the imports of the `imports` world of WIT version `version`.
fn add_version_to_linker(linker: &mut Linker<HostState>, version: &str) -> wasmtime::Result<()> {
    let interface = |name: &str| format!("dealer:platform/{name}@{version}");
    fn state(state: &mut HostState) -> &mut HostState {
        state
    }
    types::add_to_linker_instance::<_, HasSelf<_>>(
        &mut linker.instance(&interface("types"))?,
        state,
    )?;
    config::add_to_linker_instance::<_, HasSelf<_>>(
        &mut linker.instance(&interface("config"))?,
        state,
    )?;
    records::add_to_linker_instance::<_, HasSelf<_>>(
        &mut linker.instance(&interface("records"))?,
        state,
    )?;
    clock::add_to_linker_instance::<_, HasSelf<_>>(
        &mut linker.instance(&interface("clock"))?,
        state,
    )?;

    linker.instance(&interface("log"))?.func_wrap(
        "log",
        |mut store: Store<'_>, (level, message): (Level, WasmStr)| {
            let message = {
                let text = message.to_str(&store)?;
                text[..text.floor_char_boundary(super::MAX_LOG_LINE_BYTES)].to_owned()
            };
            store.data_mut().log(level, message)
        },
    )?;

    let mut events = linker.instance(&interface("events"))?;
    events.func_wrap(
        "emit",
        |mut store: Store<'_>, (kind, payload): (WasmStr, WasmStr)| {
            let checked = {
                let kind = kind.to_str(&store)?;
                let payload = payload.to_str(&store)?;
                store.data().check_emit(&kind, &payload)?
            };
            Ok((checked.map(|event| store.data_mut().emit(event)),))
        },
    )?;
    events.func_wrap(
        "notify",
        |mut store: Store<'_>, (notification,): (NotificationView,)| {
            let copied = copy_notification(&mut store, &notification)?;
            Ok((copied.and_then(|(notification, bytes)| {
                check_notification(&notification).map_err(HostError::Invalid)?;
                store.data_mut().notify(notification, bytes);
                Ok(())
            }),))
        },
    )?;

    let mut store_interface = linker.instance(&interface("store"))?;
    store_interface.func_wrap("get", |store: Store<'_>, (key,): (WasmStr,)| {
        let key = key.to_str(&store)?;
        Ok((store.data().store_get(&key),))
    })?;
    store_interface.func_wrap(
        "set",
        |mut store: Store<'_>, (key, value): (WasmStr, WasmList<u8>)| {
            let checked = {
                let key = key.to_str(&store)?;
                let value = value.as_le_slice(&store);
                store
                    .data()
                    .check_store_set(&key, value)?
                    .map(|()| (key.into_owned(), value.to_vec()))
            };
            Ok((checked.map(|(key, value)| store.data_mut().store_set(key, Some(value))),))
        },
    )?;
    store_interface.func_wrap("delete", |mut store: Store<'_>, (key,): (WasmStr,)| {
        let checked = {
            let key = key.to_str(&store)?;
            super::check_store_key(&key).map(|()| key.into_owned())
        };
        Ok((checked.map(|key| store.data_mut().store_set(key, None)),))
    })?;

    linker.instance(&interface("outbound"))?.func_wrap(
        "send",
        |mut store: Store<'_>, (request,): (RequestView,)| {
            let copied = copy_request(&mut store, &request)?;
            Ok((copied.and_then(|(request, bytes)| store.data_mut().send(request, bytes)),))
        },
    )?;

    if crate::linking::defines(version, "dealer:platform/signing") {
        let mut signing = linker.instance(&interface("signing"))?;
        for (function, mac) in [("hmac-sha1", Mac::Sha1), ("hmac-sha256", Mac::Sha256)] {
            signing.func_wrap(
                function,
                move |mut store: Store<'_>, (credential, data): (WasmStr, WasmList<u8>)| {
                    let handle = {
                        let handle = credential.to_str(&store)?;
                        (handle.len() <= MAX_HANDLE_BYTES).then(|| handle.into_owned())
                    };
                    let Some(handle) = handle else {
                        return Ok((Err(HostError::Invalid(format!(
                            "a credential handle is at most {MAX_HANDLE_BYTES} bytes"
                        ))),));
                    };
                    let key = store.data_mut().signing_key(&handle, data.len());
                    Ok((key.map(|key| mac.sign(key.as_bytes(), data.as_le_slice(&store))),))
                },
            )?;
        }
    }
    Ok(())
}

/// The MACs of `signing`.
#[derive(Clone, Copy)]
enum Mac {
    Sha1,
    Sha256,
}

impl Mac {
    fn sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        use hmac::{Hmac, Mac as _};
        match self {
            Mac::Sha1 => {
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Mac::Sha256 => {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// The pairs of a `list<tuple<string, string>>`, read in place; at most `max` of them.
fn pairs(
    store: &mut Store<'_>,
    list: &WasmList<(WasmStr, WasmStr)>,
    max: usize,
    what: &str,
) -> wasmtime::Result<Result<Vec<(WasmStr, WasmStr)>, HostError>> {
    if list.len() > max {
        return Ok(Err(HostError::Invalid(format!(
            "{} {what}; at most {max}",
            list.len()
        ))));
    }
    list.iter(&mut *store)?
        .collect::<wasmtime::Result<Vec<_>>>()
        .map(Ok)
}

/// The bytes of `texts` in the guest's memory.
fn size(store: &Store<'_>, texts: &[&WasmStr]) -> wasmtime::Result<usize> {
    texts
        .iter()
        .map(|text| text.to_str(store).map(|t| t.len()))
        .sum()
}

fn owned(store: &Store<'_>, text: &WasmStr) -> wasmtime::Result<String> {
    Ok(text.to_str(store)?.into_owned())
}

/// The guest's notification copied into the host, with its size, once it fits the budget.
fn copy_notification(
    store: &mut Store<'_>,
    view: &NotificationView,
) -> wasmtime::Result<Result<(Notification, usize), HostError>> {
    if store.data().effects.notifications.len() >= MAX_EVENTS {
        return Ok(Err(HostError::QuotaExceeded(format!(
            "a run sends at most {MAX_EVENTS} notifications"
        ))));
    }
    let data = match pairs(store, &view.data, MAX_NOTIFICATION_DATA, "data entries")? {
        Ok(data) => data,
        Err(error) => return Ok(Err(error)),
    };
    let mut texts = vec![&view.channel, &view.recipient, &view.template];
    texts.extend(data.iter().flat_map(|(k, v)| [k, v]));
    let bytes = size(store, &texts)?;
    store.data().fits(bytes, "a notification")?;
    let notification = Notification {
        channel: owned(store, &view.channel)?,
        recipient: owned(store, &view.recipient)?,
        template: owned(store, &view.template)?,
        data: data
            .iter()
            .map(|(k, v)| Ok((owned(store, k)?, owned(store, v)?)))
            .collect::<wasmtime::Result<_>>()?,
    };
    Ok(Ok((notification, bytes)))
}

/// The guest's partner request copied into the host, with its size, once it fits the budget.
fn copy_request(
    store: &mut Store<'_>,
    view: &RequestView,
) -> wasmtime::Result<Result<(Request, usize), HostError>> {
    let headers = match pairs(store, &view.headers, MAX_HEADERS, "headers")? {
        Ok(headers) => headers,
        Err(error) => return Ok(Err(error)),
    };
    let mut texts = vec![&view.url];
    texts.extend(headers.iter().flat_map(|(k, v)| [k, v]));
    if let Some(credential) = &view.credential {
        texts.push(&credential.handle);
        if let PlacementView::Header(name) = &credential.placement {
            texts.push(name);
        }
    }
    let bytes = size(store, &texts)? + view.body.len();
    store.data().fits(bytes, "a partner request")?;
    let credential = match &view.credential {
        Some(credential) => Some(Credential {
            handle: owned(store, &credential.handle)?,
            placement: match &credential.placement {
                PlacementView::Bearer => CredentialPlacement::Bearer,
                PlacementView::Header(name) => CredentialPlacement::Header(owned(store, name)?),
            },
        }),
        None => None,
    };
    let request = Request {
        method: view.method,
        url: owned(store, &view.url)?,
        headers: headers
            .iter()
            .map(|(k, v)| Ok((owned(store, k)?, owned(store, v)?)))
            .collect::<wasmtime::Result<_>>()?,
        body: view.body.as_le_slice(&*store).to_vec(),
        credential,
    };
    Ok(Ok((request, bytes)))
}
