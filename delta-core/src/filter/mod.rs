//! Filters: rule model and the rclone, rsync and robocopy spellings (in progress).
