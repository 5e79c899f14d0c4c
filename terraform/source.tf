# The deployable source: one zip holding functions/main.py (every entry point) at its
# root, the shared package beside it and requirements.txt, deployed once per entry point
# (docs/contracts.md, "Deployable source"). The object name carries the archive's hash,
# so any code change uploads a new object and redeploys every function.

locals {
  repo_root = abspath("${path.module}/..")

  # Archive path -> path in the repository.
  archive_single_files = {
    "main.py"          = "functions/main.py"
    "requirements.txt" = "requirements.txt"
  }

  # Python packages copied whole, minus bytecode caches and hidden files.
  archive_packages = ["shared"]

  archive_files = merge(
    { for name, path in local.archive_single_files : name => "${local.repo_root}/${path}" },
    [
      for package in local.archive_packages : {
        for file in fileset("${local.repo_root}/${package}", "**") :
        "${package}/${file}" => "${local.repo_root}/${package}/${file}"
        if !strcontains(file, "__pycache__") && !endswith(file, ".pyc") && !startswith(basename(file), ".")
      }
    ]...
  )
}

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.root}/.build/ga4-stitch-source.zip"

  dynamic "source" {
    for_each = local.archive_files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62: The bucket holds build inputs only; Cloud Audit Logs record access to it, so usage logs add cost without information.
  project  = var.project_id
  name     = coalesce(var.source_bucket_name, "${var.project_id}-ga4-stitch-source")
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Every object is rebuilt from the repository on apply, so nothing here is lost when
  # the pipeline is destroyed.
  force_destroy = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_storage_bucket_object" "source" {
  bucket       = google_storage_bucket.source.name
  name         = "ga4-stitch/source-${data.archive_file.source.output_md5}.zip"
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}

# Build images go to a repository of our own (not gcf-artifacts), so the build service
# account can be granted write access to this repository alone, and old images expire.
resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84: Google-managed encryption keys; the images are rebuilt from the repository and hold no data.
  project       = var.project_id
  location      = var.region
  repository_id = "ga4-stitch-functions"
  format        = "DOCKER"
  description   = "Build images of the ga4-stitch Cloud Functions."
  labels        = local.labels

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.function_images_kept
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.this]
}
