//! A real Matrix client (matrix-sdk, in-memory store): log in, sync, rooms
//! with an invited member, encrypted messages.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::room::create_room::v3::Request as CreateRoomRequest;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId};
use matrix_sdk::{Client, ClientBuilder, Room, RoomState};
use serde_json::Value;

use crate::wait;

/// How long a client waits for another's invite, join or message.
pub const MATRIX_WAIT: Duration = Duration::from_secs(90);

/// Builds the client from `builder` and logs in as `name`, the device named
/// `device`.
pub async fn login(
    builder: ClientBuilder,
    name: &str,
    password: &str,
    device: &str,
) -> Result<Client> {
    let client = builder
        .build()
        .await
        .context("build the matrix-sdk client")?;
    client
        .matrix_auth()
        .login_username(name, password)
        .initial_device_display_name(device)
        .send()
        .await
        .with_context(|| format!("log in as {name}"))?;
    Ok(client)
}

/// One sync (long-poll timeout 1 s, at most 30 s in all).
pub async fn sync(client: &Client) -> Result<()> {
    tokio::time::timeout(
        Duration::from_secs(30),
        client.sync_once(SyncSettings::default().timeout(Duration::from_secs(1))),
    )
    .await
    .map_err(|_| anyhow!("sync timed out"))?
    .context("sync")?;
    Ok(())
}

/// `inviter` invites `invitee` to `room` (the inviter's view of it);
/// `invitee` waits for the invite and joins; `inviter` waits until it sees
/// the join.
pub async fn invite_and_join(inviter: &Client, room: &Room, invitee: &Client) -> Result<()> {
    let room_id = &room.room_id().to_owned();
    let invitee_id = invitee.user_id().context("invitee")?.to_owned();
    room.invite_user_by_id(&invitee_id).await?;
    wait::until(
        "the invite",
        MATRIX_WAIT,
        Duration::from_millis(200),
        || async move {
            sync(invitee).await?;
            Ok(invitee
                .get_room(room_id)
                .filter(|r| r.state() == RoomState::Invited)
                .map(|_| ()))
        },
    )
    .await?;
    invitee.join_room_by_id(room_id).await?;
    let iid = &invitee_id;
    wait::until(
        "the join",
        MATRIX_WAIT,
        Duration::from_millis(200),
        || async move {
            sync(inviter).await?;
            let r = inviter
                .get_room(room_id)
                .context("the inviter lost the room")?;
            let m = r.get_member_no_sync(iid).await?;
            Ok(m.filter(|m| *m.membership() == MembershipState::Join)
                .map(|_| ()))
        },
    )
    .await
}

/// `inviter` creates a room (encrypted when the server says so by default),
/// invites `invitee`, who joins.
pub async fn room_with(inviter: &Client, invitee: &Client) -> Result<OwnedRoomId> {
    sync(inviter).await?;
    sync(invitee).await?;
    let room = inviter.create_room(CreateRoomRequest::new()).await?;
    invite_and_join(inviter, &room, invitee).await?;
    Ok(room.room_id().to_owned())
}

/// Sends `text` to `room_id`: the event ID, and whether it went out encrypted.
pub async fn send_text(
    client: &Client,
    room_id: &OwnedRoomId,
    text: &str,
) -> Result<(OwnedEventId, bool)> {
    let room = client.get_room(room_id).context("room")?;
    let sent = tokio::time::timeout(
        MATRIX_WAIT,
        room.send(RoomMessageEventContent::text_plain(text)),
    )
    .await
    .map_err(|_| anyhow!("send timed out"))??;
    Ok((sent.response.event_id, sent.encryption_info.is_some()))
}

/// Syncs `client` until `room_id`'s `event_id` is available decrypted, and
/// returns its body.
pub async fn read_decrypted(
    client: &Client,
    room_id: &OwnedRoomId,
    event_id: &OwnedEventId,
) -> Result<String> {
    wait::until(
        "the decrypted message",
        MATRIX_WAIT,
        Duration::from_millis(200),
        || async move {
            sync(client).await?;
            let room = client
                .get_room(room_id)
                .context("room unknown to the client")?;
            let ev = room
                .event(event_id, None)
                .await
                .context("fetch the event")?;
            if ev.encryption_info().is_none() {
                bail!("not decrypted (yet)");
            }
            let v: Value = ev.raw().deserialize_as()?;
            Ok(v["content"]["body"].as_str().map(str::to_owned))
        },
    )
    .await
}
