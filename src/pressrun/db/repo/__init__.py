"""Every query pressrun makes, in one place, as plain functions over a SQLAlchemy engine.

Functions are synchronous (the API and the dispatcher call them in worker threads) and each runs
in its own transaction, except the few that take a ``Connection``: those run inside the caller's
(the event recorder's, within a batch's close). Tenant isolation lives here: every lookup by uid
takes the workspace id and returns None for another workspace's rows, which the API turns into 404.

One module per subject, all re-exported here (``from pressrun.db import repo; repo.claim_items(…)``):

- common.py: the clock, new ids, key hashing, UTC-aware times
- keys.py: workspaces and API keys
- templates.py: templates, their versions and assets
- batches.py: batches and items from the API's side (accept, read, cancel, retry)
- dispatch.py: batches and items from the dispatcher's side (claim, finish, release, requeue)
- lifecycle.py: how a batch closes, and :class:`BatchEvents`, told of it in the same transaction
- files.py: single-render files and retention
- idempotency.py: Idempotency-Key records
- webhooks.py: subscriptions, secrets, events, deliveries and attempts
"""

from pressrun.db.repo.batches import (
    BatchTooLarge,
    EmptyBatch,
    TooManyOpenBatches,
    batch_by_id,
    batch_with_template_uid,
    cancel_batch,
    count_open_batches,
    create_batch,
    get_batch,
    item_counts,
    item_with_batch,
    items_page,
    iter_items,
    list_batches,
    list_items,
    retry_failed,
)
from pressrun.db.repo.common import NO_ERROR, aware, error_columns, hash_key, iso, new_uid, now
from pressrun.db.repo.dispatch import (
    active_batches,
    claim_items,
    finish_item,
    finish_items,
    release_item,
    requeue_abandoned,
)
from pressrun.db.repo.files import expired_outputs, mark_expired, record_file
from pressrun.db.repo.idempotency import (
    idempotency_abandon,
    idempotency_begin,
    idempotency_finish,
    idempotency_release_claims,
)
from pressrun.db.repo.keys import (
    KEY_PREFIX,
    ApiKey,
    count_keys,
    create_key,
    find_key,
    first_workspace_uid,
    list_keys,
    revoke_key,
    workspace_id,
)
from pressrun.db.repo.lifecycle import BatchEvents, close_if_done, count_items, lock_batch
from pressrun.db.repo.templates import (
    VERSION_FIELDS,
    create_template,
    delete_template,
    find_template_by_name,
    get_template,
    list_assets,
    list_templates,
    template_version_by_id,
    update_template,
    upsert_asset,
)
from pressrun.db.repo.webhooks import (
    DeliveryInFlight,
    Target,
    batch_secret,
    claim_due,
    create_subscription,
    delete_subscription,
    ensure_batch_secret,
    fail_without_attempt,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    new_secret,
    record_attempt,
    record_event,
    record_subscribed_event,
    redeliver,
    release_leases,
    rotate_secret,
    subscribed_targets,
    update_subscription,
)

__all__ = [
    # common
    "NO_ERROR", "aware", "error_columns", "hash_key", "iso", "new_uid", "now",
    # keys
    "KEY_PREFIX", "ApiKey", "count_keys", "create_key", "find_key", "first_workspace_uid", "list_keys", "revoke_key",
    "workspace_id",
    # templates
    "VERSION_FIELDS", "create_template", "delete_template", "find_template_by_name", "get_template", "list_assets",
    "list_templates", "template_version_by_id", "update_template", "upsert_asset",
    # batches (the API's side)
    "BatchTooLarge", "EmptyBatch", "TooManyOpenBatches", "batch_by_id", "batch_with_template_uid", "cancel_batch",
    "count_open_batches", "create_batch", "get_batch", "item_counts", "item_with_batch", "items_page", "iter_items",
    "list_batches", "list_items", "retry_failed",
    # dispatch (the dispatcher's side)
    "active_batches", "claim_items", "finish_item", "finish_items", "release_item", "requeue_abandoned",
    # lifecycle
    "BatchEvents", "close_if_done", "count_items", "lock_batch",
    # files and retention
    "expired_outputs", "mark_expired", "record_file",
    # idempotency
    "idempotency_abandon", "idempotency_begin", "idempotency_finish", "idempotency_release_claims",
    # webhooks
    "DeliveryInFlight", "Target", "batch_secret", "claim_due", "create_subscription", "delete_subscription",
    "ensure_batch_secret", "fail_without_attempt", "get_subscription", "list_deliveries", "list_subscriptions",
    "new_secret", "record_attempt", "record_event", "record_subscribed_event", "redeliver", "release_leases",
    "rotate_secret", "subscribed_targets", "update_subscription",
]
