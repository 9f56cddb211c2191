"""Typed, batched access to Fleetwright's block documents through the Prefect API.

`Block.save()` re-registers the block type and schema on every call (several requests); the
catalogue writes thousands of blocks at a time, so this registers each type once per client and
then creates, updates and reads documents directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast
from uuid import UUID

import httpx
from prefect.blocks.core import Block
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
from prefect.client.schemas.objects import BlockDocument
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from fleetwright.errors import PrefectUnavailableError

__all__ = [
    "BlockStore",
    "block_from_document",
    "block_then_row",
    "open_block_store",
    "using_store",
]

B = TypeVar("B", bound=Block)


def _data(block: Block) -> dict[str, Any]:
    """The document data of a flat block, secrets revealed for the API to encrypt.

    Both Block._to_block_document and Block.model_dump(context=include_secrets) build the
    block's JSON schema on every call (~100 ms here); this is a few µs.
    """
    out: dict[str, Any] = {}
    for name in type(block).model_fields:
        value = getattr(block, name)
        out[name] = (
            value.get_secret_value() if isinstance(value, SecretStr | SecretBytes) else value
        )
    return cast(dict[str, Any], to_jsonable_python(out))


def block_from_document(cls: type[B], doc: BlockDocument) -> B:
    """The block a document of a flat Fleetwright block type holds.

    `Block._from_block_document` also emits a `prefect.block.<type>.loaded` event: a reconcile
    reads every document, and on a fleet of 10,000 profiles that was 10,000 events per run,
    more than the server's in-memory event queue holds (it dropped the rest).
    """
    block = cls.model_validate(doc.data)
    block._block_document_id = doc.id
    block._block_document_name = doc.name
    block._is_anonymous = doc.is_anonymous
    return block


class BlockStore:
    """Create, update, delete and list block documents of Fleetwright's block types."""

    def __init__(self, client: PrefectClient) -> None:
        self.client = client
        self._ids: dict[type[Block], tuple[UUID, UUID]] = {}
        self._register_lock = asyncio.Lock()
        self._first_write = asyncio.Lock()
        self._written = False

    async def _type_ids(self, cls: type[Block]) -> tuple[UUID, UUID]:
        """The block type and schema ids, registering them once (concurrent callers wait)."""
        ids = self._ids.get(cls)
        if ids is None:
            async with self._register_lock:
                ids = self._ids.get(cls)
                if ids is None:
                    await cls.aregister_type_and_schema(client=self.client)
                    assert cls._block_type_id is not None and cls._block_schema_id is not None
                    ids = (cls._block_type_id, cls._block_schema_id)
                    self._ids[cls] = ids
        return ids

    async def create(self, block: Block, name: str, *, overwrite: bool = True) -> UUID:
        """Create the document `name` (or overwrite one of that name); returns its id."""
        type_id, schema_id = await self._type_ids(type(block))
        create = BlockDocumentCreate(
            name=name, data=_data(block), block_type_id=type_id, block_schema_id=schema_id
        )
        if not self._written:
            # A fresh server creates its encryption key on the first write, and concurrent
            # first writes race to insert it (409 or 500): let one write go first.
            async with self._first_write:
                if not self._written:
                    doc_id = await self._create(create, block, name, overwrite)
                    self._written = True
                    return doc_id
        return await self._create(create, block, name, overwrite)

    async def _create(
        self, create: BlockDocumentCreate, block: Block, name: str, overwrite: bool
    ) -> UUID:
        for attempt in range(5):
            try:
                created = await self.client.create_block_document(create)
            except ObjectAlreadyExists:
                try:
                    existing = await self.client.read_block_document_by_name(
                        name, type(block).get_block_type_slug()
                    )
                except ObjectNotFound:
                    # The server answers 409 for any integrity error, e.g. concurrent first
                    # writes racing to create its encryption key: not a name clash; try again.
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                if not overwrite:
                    raise
                await self.update(existing.id, block)
                return existing.id
            return created.id
        raise PrefectUnavailableError(
            f"the Prefect API kept refusing to create block {name!r}; see its server log"
        )

    async def update(self, document_id: UUID | str, block: Block) -> None:
        _, schema_id = await self._type_ids(type(block))
        await self.client.update_block_document(
            UUID(str(document_id)),
            BlockDocumentUpdate(
                block_schema_id=schema_id, data=_data(block), merge_existing_data=False
            ),
        )

    async def delete(self, document_id: UUID | str) -> bool:
        """Delete a document; False when it was already gone."""
        try:
            await self.client.delete_block_document(UUID(str(document_id)))
        except ObjectNotFound:
            return False
        return True

    async def read(self, cls: type[B], document_id: UUID | str) -> tuple[BlockDocument, B] | None:
        try:
            doc = await self.client.read_block_document(
                UUID(str(document_id)), include_secrets=True
            )
        except ObjectNotFound:
            return None
        return doc, block_from_document(cls, doc)

    async def read_document(self, document_id: UUID | str) -> BlockDocument | None:
        """One document with its secrets, as stored (not validated as a block)."""
        try:
            return await self.client.read_block_document(
                UUID(str(document_id)), include_secrets=True
            )
        except ObjectNotFound:
            return None

    async def read_by_name(self, cls: type[B], name: str) -> B | None:
        try:
            doc = await self.client.read_block_document_by_name(
                name, cls.get_block_type_slug(), include_secrets=True
            )
        except ObjectNotFound:
            return None
        return block_from_document(cls, doc)

    async def list(self, cls: type[B], *, page: int = 200) -> list[BlockDocument]:
        """Every document of `cls`'s type, with secrets (for reconciling), read page by page."""
        await self._type_ids(cls)
        docs: list[BlockDocument] = []
        offset = 0
        while True:
            # The by-slug endpoint ignores limit/offset; the filter endpoint pages.
            response = await self.client._client.post(
                "/block_documents/filter",
                json={
                    "block_types": {"slug": {"any_": [cls.get_block_type_slug()]}},
                    "include_secrets": True,
                    "limit": page,
                    "offset": offset,
                    "sort": "NAME_ASC",
                },
            )
            response.raise_for_status()
            batch = BlockDocument.model_validate_list(response.json())
            docs.extend(d for d in batch if not d.is_anonymous)
            if len(batch) < page:
                return docs
            offset += page


@asynccontextmanager
async def block_then_row(store: BlockStore, block: Block, name: str) -> AsyncIterator[UUID]:
    """Write the block, then let the caller write its row; if that fails, delete the block."""
    doc_id = await store.create(block, name)
    try:
        yield doc_id
    except BaseException:
        await asyncio.shield(store.delete(doc_id))
        raise


@asynccontextmanager
async def open_block_store(
    *, connections: int | None = None, **client_args: Any
) -> AsyncIterator[BlockStore]:
    """A BlockStore on a fresh Prefect client; a clear error when the API does not answer.

    `connections`: how many requests the caller keeps in flight. The client keeps that many
    HTTP connections alive (Prefect's default keeps 8 of 16): a request over the keep-alive
    limit would otherwise open and close a connection of its own, on both sides.
    """
    if connections is not None:
        settings = dict(client_args.pop("httpx_settings", None) or {})
        settings.setdefault(
            "limits",
            httpx.Limits(
                max_connections=max(connections, 16),
                max_keepalive_connections=max(connections, 8),
                keepalive_expiry=25,
            ),
        )
        client_args["httpx_settings"] = settings
    client = get_client(**client_args)
    async with client:
        problem = await client.api_healthcheck()
        if problem is not None:
            raise PrefectUnavailableError(
                f"The Prefect API at {client.api_url} does not answer "
                f"({type(problem).__name__}). Start it with `fleetwright up` or set "
                "FLEETWRIGHT_PREFECT_API_URL."
            )
        try:
            yield BlockStore(client)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise PrefectUnavailableError(
                f"The Prefect API at {client.api_url} stopped answering ({type(exc).__name__})."
            ) from None


class using_store:
    """Use the given BlockStore, or open one for the duration (keeping `connections` open)."""

    def __init__(self, store: BlockStore | None, *, connections: int | None = None) -> None:
        self.store = store
        self.connections = connections
        self._cm: Any = None

    async def __aenter__(self) -> BlockStore:
        if self.store is not None:
            return self.store
        self._cm = open_block_store(connections=self.connections)
        store: BlockStore = await self._cm.__aenter__()
        return store

    async def __aexit__(self, *exc: Any) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)
