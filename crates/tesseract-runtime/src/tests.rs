//! Against the system's Tesseract when it is installed (`tesseract-ocr tesseract-ocr-eng` on
//! Debian); each test that needs it says `skipped` when it is not.

use super::*;

fn system_library() -> Option<Arc<Library>> {
    match Library::open_first(usual_locations()) {
        Ok(library) => Some(library),
        Err(error) => {
            eprintln!("skipped: {error} (install tesseract-ocr)");
            None
        }
    }
}

/// The folder holding `eng.traineddata`, where Debian or the environment puts it.
fn english_data() -> Option<PathBuf> {
    let prefix = std::env::var_os("TESSDATA_PREFIX").map(PathBuf::from);
    let found = prefix
        .into_iter()
        .flat_map(|p| [p.join("tessdata"), p])
        .chain([PathBuf::from("/usr/share/tesseract-ocr/5/tessdata")])
        .chain([PathBuf::from("/usr/share/tesseract-ocr/4.00/tessdata")])
        .find(|dir| dir.join("eng.traineddata").is_file());
    if found.is_none() {
        eprintln!("skipped: no eng.traineddata (install tesseract-ocr-eng)");
    }
    found
}

#[test]
fn a_missing_library_says_where_it_looked() {
    let error = Library::open_first([
        PathBuf::from("/nowhere/libtesseract.so.5"),
        PathBuf::from("libtesseract-that-does-not-exist.so"),
    ])
    .unwrap_err();
    assert_eq!(error.tried.len(), 2);
    let message = error.to_string();
    assert!(message.starts_with("libtesseract was not found (tried /nowhere/libtesseract.so.5, "));
    let one = Library::open(Path::new("/nowhere/libtesseract.so.5")).unwrap_err();
    assert!(
        one.to_string()
            .starts_with("could not open /nowhere/libtesseract.so.5: "),
        "{one}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_library_that_is_not_tesseract_is_refused() {
    let error = Library::open(Path::new("libc.so.6")).unwrap_err();
    assert!(
        error.to_string().contains("it has no TessVersion"),
        "{error}"
    );
}

#[test]
fn the_system_library_reports_its_version() {
    let Some(library) = system_library() else {
        return;
    };
    let major = library.version().split('.').next().unwrap();
    assert!(["4", "5"].contains(&major), "{}", library.version());
    assert!(!library.location().is_empty());
}

#[test]
fn a_language_without_data_fails_to_load() {
    let (Some(library), Some(data)) = (system_library(), english_data()) else {
        return;
    };
    let error = Engine::new(library, Some(&data), "xx-not-a-language").unwrap_err();
    assert!(matches!(error, Error::Init { ref languages, .. } if languages == "xx-not-a-language"));
    assert!(
        error
            .to_string()
            .contains("could not load \"xx-not-a-language\""),
        "{error}"
    );
}

#[test]
fn images_that_do_not_fit_their_buffer_are_refused_before_tesseract_sees_them() {
    let (Some(library), Some(data)) = (system_library(), english_data()) else {
        return;
    };
    let mut engine = Engine::new(library, Some(&data), "eng").unwrap();
    let pixels = vec![255u8; 100];
    for image in [
        Image::grey(&pixels, 20, 10, 300),
        Image::grey(&pixels, 0, 10, 300),
        Image {
            bytes_per_pixel: 2,
            ..Image::grey(&pixels, 10, 10, 300)
        },
        Image {
            bytes_per_line: 5,
            ..Image::grey(&pixels, 10, 10, 300)
        },
    ] {
        let error = engine.recognise(&image, PageSegMode::Auto).unwrap_err();
        assert!(matches!(error, Error::BadImage(_)), "{error}");
    }
    // The instance is still usable after a refusal.
    let blank = engine
        .recognise(&Image::grey(&pixels, 10, 10, 300), PageSegMode::Auto)
        .unwrap();
    assert_eq!(blank.text.trim(), "");
}

/// Draws `word` in a 5×7 dot-matrix font, each dot `scale` pixels, black on white.
fn draw(word: &str, scale: usize) -> (Vec<u8>, u32, u32) {
    const GLYPHS: &[(char, [u8; 7])] = &[
        ('H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
        ('E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
        ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
        ('O', [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ];
    let margin = 10 * scale;
    let width = margin * 2 + word.len() * 6 * scale;
    let height = margin * 2 + 7 * scale;
    let mut pixels = vec![255u8; width * height];
    for (i, c) in word.chars().enumerate() {
        let rows = GLYPHS.iter().find(|(g, _)| *g == c).unwrap().1;
        for (row, bits) in rows.iter().enumerate() {
            for column in 0..5 {
                if bits & (0x10 >> column) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = margin + (i * 6 + column) * scale + dx;
                        let y = margin + row * scale + dy;
                        pixels[y * width + x] = 0;
                    }
                }
            }
        }
    }
    (pixels, width as u32, height as u32)
}

#[test]
fn a_drawn_word_is_read_and_the_models_are_kept_between_pages() {
    let (Some(library), Some(data)) = (system_library(), english_data()) else {
        return;
    };
    let mut engine = Engine::new(library, Some(&data), "eng").unwrap();
    let (pixels, width, height) = draw("HELLO", 6);
    let image = Image::grey(&pixels, width, height, 300);
    for mode in [PageSegMode::Auto, PageSegMode::SingleBlock] {
        let read = engine.recognise(&image, mode).unwrap();
        assert_eq!(read.text.trim(), "HELLO", "{mode:?}");
        assert!((0..=100).contains(&read.mean_confidence));
    }
}
