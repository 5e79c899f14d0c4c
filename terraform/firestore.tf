# Firestore (native mode) holds identity and session state (docs/contracts.md,
# "Firestore collections"). Every document carries `expire_at`; the TTL policies below
# delete a document after that time has passed (typically within a day), so state for
# browsers never seen again does not accumulate.

locals {
  # Collections the functions write, before COLLECTION_PREFIX (settings.collection(...)
  # in shared/).
  state_collections = ["clients", "users", "forwarded", "link_tokens", "bridge_candidates"]

  # (collection, field) pairs kept out of the single-field indexes.
  unindexed_fields = {
    for pair in flatten([
      for collection, fields in var.firestore_unindexed_fields : [
        for field in fields : { collection = collection, field = field }
      ]
    ]) : "${pair.collection}.${pair.field}" => pair
  }
}

resource "google_firestore_database" "this" {
  count = var.create_firestore_database ? 1 : 0

  project     = var.project_id
  name        = var.firestore_database
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  point_in_time_recovery_enablement = var.firestore_point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"

  # `terraform destroy` leaves the database (and its state) in place; delete it by hand
  # once you mean to.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.this]
}

# TTL on expire_at, and no single-field index on it: nothing queries expire_at, and an
# index on an ever-increasing timestamp would be a write hotspot and a cost per write.
resource "google_firestore_field" "expire_at" {
  for_each = toset(local.state_collections)

  project    = var.project_id
  database   = var.firestore_database
  collection = "${var.collection_prefix}${each.value}"
  field      = "expire_at"

  ttl_config {}

  index_config {}

  depends_on = [google_firestore_database.this]
}

# Index exemptions for large fields. By default Firestore indexes every field, every leaf
# of a map and every element of an array: a client document's compressed history (state)
# or a bridge candidate's map of clients would add index entries to every write (billed
# as write work and latency; an entry over 1,500 bytes is truncated). The functions read
# these documents by id and never query these fields.
resource "google_firestore_field" "unindexed" {
  for_each = local.unindexed_fields

  project    = var.project_id
  database   = var.firestore_database
  collection = "${var.collection_prefix}${each.value.collection}"
  field      = each.value.field

  index_config {}

  depends_on = [google_firestore_database.this]
}
