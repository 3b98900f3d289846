use super::*;

fn shipped() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("matrix.yaml")).expect("matrix.yaml")
}

/// A fresh directory under the target's temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("igw-matrix-edit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped matrix with one cell changed (still valid).
fn edited(text: &str) -> String {
    let changed = text.replacen("\nversion: 1\n", "\nversion: 1\n# edited through the API\n", 1);
    assert_ne!(changed, text, "the shipped matrix starts with `version: 1`");
    changed
}

#[test]
fn check_gives_line_and_column_like_the_cli() {
    let ok = check_text(&shipped(), "m.yaml");
    assert_eq!(ok, CheckView { valid: true, problems: vec![] });
    let bad = shipped().replacen("\nversion: 1\n", "\nversion: 1\nbogus_field: 3\n", 1);
    let line = shipped().lines().position(|l| l == "version: 1").unwrap() as u64 + 2;
    let view = check_text(&bad, "m.yaml");
    assert!(!view.valid);
    let first = &view.problems[0];
    assert_eq!((first.line, first.column), (line, 1), "{view:?}");
    assert!(first.message.contains("bogus_field"), "{view:?}");
    // Not YAML at all: still a place and a message, no panic.
    let broken = check_text("version: 1\nprotocols: [unclosed\n", "m.yaml");
    assert!(!broken.valid && broken.problems[0].line >= 2, "{broken:?}");
    // The same text the CLI prints, line for line.
    let err = Matrix::parse(&bad, "m.yaml").unwrap_err();
    let cli: Vec<String> = err.diagnostics.iter().map(|d| d.to_string()).collect();
    let api: Vec<String> =
        view.problems.iter().map(|p| format!("m.yaml:{}:{}: {}", p.line, p.column, p.message)).collect();
    assert_eq!(cli, api);
}

#[test]
fn replace_keeps_the_previous_text_and_rollback_swaps_back() {
    let dir = Dir::new("apply");
    let path = dir.0.join("matrix.yaml");
    let original = shipped();
    std::fs::write(&path, &original).unwrap();
    let file = MatrixFile::new(&path);
    assert_eq!(file.previous().unwrap(), None);
    assert!(matches!(file.rollback(), Err(EditError::NoPrevious)));

    let new = edited(&original);
    file.replace(&new).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new);
    assert_eq!(file.previous().unwrap().as_deref(), Some(original.as_str()));

    file.rollback().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    // The text rolled back from is kept: a rollback can be undone.
    assert_eq!(file.previous().unwrap().as_deref(), Some(new.as_str()));
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn an_invalid_matrix_changes_nothing() {
    let dir = Dir::new("invalid");
    let path = dir.0.join("matrix.yaml");
    let original = shipped();
    std::fs::write(&path, &original).unwrap();
    let file = MatrixFile::new(&path);
    match file.replace("version: 1\nprotocols: {webrtc: {video: [h264], audio: [nonsense]}}\n") {
        Err(EditError::Invalid(problems)) => assert!(!problems.is_empty()),
        other => panic!("expected Invalid, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    assert_eq!(file.previous().unwrap(), None);
}

#[test]
fn a_failed_write_changes_nothing() {
    let dir = Dir::new("failed");
    let path = dir.0.join("matrix.yaml");
    let original = shipped();
    std::fs::write(&path, &original).unwrap();
    let file = MatrixFile::new(&path);
    // The previous text cannot be written: a non-empty directory stands where it goes.
    std::fs::create_dir_all(file.previous_path().join("in-the-way")).unwrap();
    let err = file.replace(&edited(&original)).err().expect("the write fails");
    assert!(matches!(err, EditError::Io { .. }), "{err}");
    assert!(err.to_string().contains("matrix.yaml.previous"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    // A matrix in a directory that does not exist: an error, nothing created.
    let gone = MatrixFile::new(&dir.0.join("missing/matrix.yaml"));
    assert!(matches!(gone.replace(&original), Err(EditError::Io { .. })));
    assert!(!dir.0.join("missing").exists());
}

#[test]
fn undo_puts_both_files_back() {
    let dir = Dir::new("undo");
    let path = dir.0.join("matrix.yaml");
    let original = shipped();
    std::fs::write(&path, &original).unwrap();
    let file = MatrixFile::new(&path);
    let undo = file.replace(&edited(&original)).unwrap();
    file.undo(&undo);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    assert!(!file.previous_path().exists(), "there was no previous text before");
}
