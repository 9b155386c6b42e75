//! A thin subtensor client over subxt: dynamic storage reads pinned to one block and signed
//! transactions, every call under a deadline. Values are decoded into plain Rust types here, or
//! by hand (`registration.rs`), never through generated code, so a runtime upgrade that leaves
//! these few items alone cannot break valkit (chain.md §5.1, §8).
//!
//! A dead, refusing or silent endpoint is an `endpoint::Unreachable` (exit 4); a call the chain
//! rejects is a `PalletError` carrying the pallet's own error name.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use subxt::client::{ClientAtBlock, OnlineClientAtBlockImpl};
use subxt::config::polkadot::PolkadotExtrinsicParamsBuilder;
use subxt::dynamic::{self, At, Value};
use subxt::rpcs::{LegacyRpcMethods, RpcClient};
use subxt::tx::TransactionStatus;
use subxt::utils::AccountId32;
use subxt::{OnlineClient, PolkadotConfig};
use subxt_signer::sr25519::Keypair;

use crate::endpoint::Unreachable;

type Config = PolkadotConfig;
type AtBlock = ClientAtBlock<Config, OnlineClientAtBlockImpl<Config>>;

const SERVICE: &str = "subtensor";

/// The well-known endpoints behind `--network` names (the bittensor SDK's).
pub fn endpoint(network: &str) -> anyhow::Result<String> {
    Ok(match network {
        "finney" => "wss://entrypoint-finney.opentensor.ai:443".into(),
        "test" => "wss://test.finney.opentensor.ai:443".into(),
        "local" => "ws://127.0.0.1:9944".into(),
        url if url.starts_with("ws://") || url.starts_with("wss://") => url.into(),
        other => anyhow::bail!("--network {other:?}: expected finney, test, local, ws://HOST:PORT or wss://HOST:PORT"),
    })
}

/// The chain refused a call: `SubtensorModule::SettingWeightsTooFast` and the like.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the chain refused the call: {pallet}::{name}{}", if docs.is_empty() { String::new() } else { format!(" ({docs})") })]
pub struct PalletError {
    pub pallet: String,
    pub name: String,
    pub docs: String,
}

pub struct Chain {
    api: OnlineClient<Config>,
    rpc: LegacyRpcMethods<subxt::config::RpcConfigFor<Config>>,
    endpoint: String,
    deadline: Duration,
}

/// Whether a subxt error means the connection, not the request, failed.
fn is_transport(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(rpc) = e.downcast_ref::<subxt::rpcs::Error>() {
            return matches!(rpc, subxt::rpcs::Error::Client(_) | subxt::rpcs::Error::DisconnectedWillReconnect(_));
        }
        next = e.source();
    }
    false
}

impl Chain {
    /// Connects and reads the genesis hash; `deadline` bounds every later call too.
    pub async fn connect(endpoint: &str, deadline: Duration) -> anyhow::Result<Self> {
        let unreachable = |detail: String| Unreachable { service: SERVICE, endpoint: endpoint.to_string(), detail };
        let connect = async {
            let rpc = RpcClient::from_insecure_url(endpoint).await?;
            let api = OnlineClient::<Config>::from_rpc_client(rpc.clone()).await?;
            Ok::<_, subxt::Error>((rpc, api))
        };
        let (rpc, api) = match tokio::time::timeout(deadline, connect).await {
            Err(_) => return Err(unreachable(format!("no answer within {} s", deadline.as_secs_f64())).into()),
            Ok(Err(e)) => return Err(unreachable(e.to_string()).into()),
            Ok(Ok(pair)) => pair,
        };
        Ok(Self { api, rpc: LegacyRpcMethods::new(rpc), endpoint: endpoint.to_string(), deadline })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn genesis_hash(&self) -> String {
        format!("{:?}", self.api.genesis_hash())
    }

    /// Runs one request under the deadline; transport failures and silence become `Unreachable`.
    async fn call<T, E>(&self, what: &str, fut: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let unreachable = |detail: String| Unreachable { service: SERVICE, endpoint: self.endpoint.clone(), detail };
        match tokio::time::timeout(self.deadline, fut).await {
            Err(_) => Err(anyhow::Error::new(unreachable(format!("no answer to {what} within {} s", self.deadline.as_secs_f64())))),
            Ok(Err(e)) if is_transport(&e) => Err(anyhow::Error::new(unreachable(format!("{what}: {e}")))),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("{what} at {}", self.endpoint))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// State at a block: `None` is the finalized head (what the SDK's metagraph reads).
    pub async fn at(&self, block: Option<u64>) -> anyhow::Result<Block<'_>> {
        let at = match block {
            None => self.call("the finalized head", self.api.at_current_block()).await?,
            Some(n) => self.call(&format!("block {n}"), self.api.at_block(n)).await?,
        };
        Ok(Block { chain: self, at })
    }

    /// `chain_getBlockHash(n)` as the SDK's `get_block_hash` gives it: `0x` + 64 lowercase hex.
    pub async fn block_hash(&self, number: u64) -> anyhow::Result<String> {
        let hash = self.call(&format!("the hash of block {number}"), self.rpc.chain_get_block_hash(Some(number.into()))).await?;
        let hash = hash.with_context(|| format!("{} has no block {number}", self.endpoint))?;
        Ok(format!("{hash:?}"))
    }

    /// Signs with `signer`, submits with a mortal era of `mortal_blocks`, and waits (under the
    /// deadline) until the transaction is in a block. Returns that block's number and hash.
    pub async fn submit<C: subxt::tx::Payload>(&self, call: &C, signer: &Keypair, mortal_blocks: u64) -> anyhow::Result<Included> {
        let what = format!("{}.{}", call.pallet_name(), call.call_name());
        let params = PolkadotExtrinsicParamsBuilder::<Config>::new().mortal(mortal_blocks).build();
        let submit = async {
            let mut tx = self.api.transactions().await?;
            tx.sign_and_submit_then_watch(call, signer, params).await.map_err(subxt::Error::from)
        };
        let mut progress = self.call(&format!("submitting {what}"), submit).await?;
        let in_block = loop {
            let status = self.call(&format!("waiting for {what} to be included"), async { progress.next().await.transpose() }).await?;
            match status {
                None => anyhow::bail!("{} stopped reporting {what} before it was included", self.endpoint),
                Some(TransactionStatus::InBestBlock(b) | TransactionStatus::InFinalizedBlock(b)) => break b,
                Some(
                    TransactionStatus::Error { message } | TransactionStatus::Invalid { message } | TransactionStatus::Dropped { message },
                ) => {
                    anyhow::bail!("{} refused {what}: {message}", self.endpoint)
                }
                Some(_) => continue,
            }
        };
        let block_hash = format!("{:?}", in_block.block_hash());
        match self.call(&format!("the events of {what}"), in_block.wait_for_success()).await {
            Ok(_) => {}
            Err(e) => return Err(pallet_error(e).unwrap_or_else(|e| e)),
        }
        let block = self.call("the inclusion block", in_block.at()).await?.block_number();
        Ok(Included { block, block_hash, extrinsic_hash: format!("{:?}", in_block.extrinsic_hash()) })
    }
}

/// Replaces a dispatch error by the pallet error it names, when it names one.
fn pallet_error(err: anyhow::Error) -> Result<anyhow::Error, anyhow::Error> {
    use subxt::error::{DispatchError, TransactionEventsError};
    let module = err.chain().find_map(|e| match e.downcast_ref::<TransactionEventsError>() {
        Some(TransactionEventsError::ExtrinsicFailed(DispatchError::Module(m))) => Some(m.clone()),
        _ => None,
    });
    let Some(module) = module else { return Err(err) };
    match module.details() {
        Ok(d) => Ok(anyhow::Error::new(PalletError {
            pallet: d.pallet.name().to_string(),
            name: d.variant.name.clone(),
            docs: d.variant.docs.join(" ").trim().to_string(),
        })),
        Err(_) => Err(err),
    }
}

/// Where a submitted transaction landed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Included {
    pub block: u64,
    pub block_hash: String,
    pub extrinsic_hash: String,
}

/// Reads pinned to one block.
pub struct Block<'a> {
    chain: &'a Chain,
    at: AtBlock,
}

impl Block<'_> {
    pub fn number(&self) -> u64 {
        self.at.block_number()
    }

    pub fn hash(&self) -> String {
        format!("{:?}", self.at.block_hash())
    }

    pub fn spec_version(&self) -> u32 {
        self.at.spec_version()
    }

    pub fn endpoint(&self) -> &str {
        self.chain.endpoint()
    }

    /// A single storage value, or the item's default when nothing is stored.
    pub async fn value<K, V>(&self, pallet: &str, item: &str, keys: K) -> anyhow::Result<V>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues + subxt::ext::frame_decode::storage::IntoDecodableValues + Send,
        V: subxt::ext::scale_decode::DecodeAsType,
    {
        let value = self.optional(pallet, item, keys).await?;
        value.with_context(|| format!("{pallet}.{item} holds nothing at block {} and has no default", self.number()))
    }

    /// A storage value, its default when nothing is stored, `None` when an `Option` query holds nothing.
    pub async fn optional<K, V>(&self, pallet: &str, item: &str, keys: K) -> anyhow::Result<Option<V>>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues + subxt::ext::frame_decode::storage::IntoDecodableValues + Send,
        V: subxt::ext::scale_decode::DecodeAsType,
    {
        let what = format!("{pallet}.{item}");
        let addr = dynamic::storage::<K, V>(pallet, item);
        let value = self.chain.call(&what, self.at.storage().try_fetch(addr, keys)).await?;
        value.map(|v| v.decode().with_context(|| format!("decoding {what} at block {}", self.number()))).transpose()
    }

    /// A plain storage value by its raw key, for items older runtimes' metadata lacks (so a
    /// dynamic address would not validate); `None` when nothing is stored.
    pub async fn raw_plain(&self, pallet: &str, item: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = [sp_crypto_hashing::twox_128(pallet.as_bytes()), sp_crypto_hashing::twox_128(item.as_bytes())].concat();
        match self.chain.call(&format!("{pallet}.{item}"), self.at.storage().fetch_raw(key)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e)
                if e.chain()
                    .any(|c| matches!(c.downcast_ref::<subxt::error::StorageError>(), Some(subxt::error::StorageError::NoValueFound))) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the runtime at this block has the call `pallet.call`.
    pub fn has_call(&self, pallet: &str, call: &str) -> bool {
        self.at.metadata_ref().pallet_by_name(pallet).and_then(|p| p.call_variant_by_name(call)).is_some()
    }

    /// Whether the runtime at this block declares the storage item `pallet.item`.
    pub fn has_storage(&self, pallet: &str, item: &str) -> bool {
        self.at.metadata_ref().pallet_by_name(pallet).and_then(|p| p.storage()).and_then(|s| s.entry_by_name(item)).is_some()
    }

    /// Every entry of a double map under `netuid`, keyed by the second key (Identity or a
    /// `*Concat` hasher, so the key is readable), with the raw SCALE value bytes.
    pub async fn scan<K2>(&self, pallet: &str, item: &str, netuid: u16) -> anyhow::Result<BTreeMap<K2, Vec<u8>>>
    where
        K2: subxt::ext::scale_decode::DecodeAsType + Ord,
    {
        let what = format!("{pallet}.{item}");
        let addr = dynamic::storage::<(u16, Value), Value>(pallet, item);
        let mut entries = self.chain.call(&what, self.at.storage().iter(addr, (netuid,))).await?;
        let mut out = BTreeMap::new();
        loop {
            let next = self.chain.call(&what, async { entries.next().await.transpose() }).await?;
            let Some(entry) = next else { break };
            let key = entry.key().with_context(|| format!("decoding a key of {what}"))?;
            let part = key.part(1).with_context(|| format!("a key of {what} has no second part"))?;
            let key2 = part.decode_as::<K2>().with_context(|| format!("decoding a key of {what}"))?;
            let key2 = key2.with_context(|| format!("{what} is keyed by a hash that hides the key"))?;
            out.insert(key2, entry.value().bytes().to_vec());
        }
        Ok(out)
    }

    /// A runtime API call, its answer decoded as `V` (a `Value` to read it by field name, so new
    /// fields do not matter).
    pub async fn runtime_api<A, V>(&self, api: &str, method: &str, args: A) -> anyhow::Result<V>
    where
        A: subxt::ext::frame_decode::runtime_apis::IntoEncodableValues,
        V: subxt::ext::scale_decode::DecodeAsType,
    {
        let what = format!("{api}.{method}");
        let payload = dynamic::runtime_api_call::<_, V>(api, method, args);
        self.chain.call(&what, self.at.runtime_apis().call(payload)).await
    }
}

/// `AccountId32` as the SDK prints it (SS58, prefix 42).
pub fn ss58(account: &AccountId32) -> String {
    account.to_string()
}

/// Named field of a decoded value, as a sequence of unsigned integers.
pub fn field_u128s(value: &Value, name: &str) -> Option<Vec<u128>> {
    let field = value.at(name)?;
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(item) = field.at(i) {
        out.push(item.as_u128()?);
        i += 1;
    }
    Some(out)
}
