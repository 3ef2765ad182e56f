//! Tesseract's C API (`tesseract/capi.h`), bound when the library is opened at run time.
//!
//! Linking Tesseract at build time needs its `-dev` package, Leptonica's, pkg-config and clang
//! (for bindgen) on every machine that builds; opening it at run time needs only the runtime
//! package (`libtesseract5`, pulled in by `tesseract-ocr`) on the machine that reads scans,
//! and a build without it still runs. This crate is the one place of its workspace where
//! `unsafe` is written: every call into the library goes through the safe API below, and the
//! library and each Tesseract instance are freed on drop.
//!
//! Only the dozen functions a reader of page images needs are bound: create, init with a
//! language, page segmentation mode, set image, source resolution, recognise, UTF-8 text,
//! mean confidence, clear, end and delete.

use std::{
    ffi::{CStr, CString, c_char, c_int, c_void},
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

/// `TessBaseAPI*`: an opaque handle owned by [`Engine`].
type Handle = *mut c_void;

/// The C functions, copied out of the library once it is open. They stay valid while the
/// `libloading::Library` beside them in [`Library`] is alive, which every [`Engine`] ensures
/// by holding an `Arc<Library>`.
#[derive(Clone, Copy)]
struct Api {
    version: unsafe extern "C" fn() -> *const c_char,
    create: unsafe extern "C" fn() -> Handle,
    delete: unsafe extern "C" fn(Handle),
    init3: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    end: unsafe extern "C" fn(Handle),
    set_page_seg_mode: unsafe extern "C" fn(Handle, c_int),
    set_image: unsafe extern "C" fn(Handle, *const u8, c_int, c_int, c_int, c_int),
    set_source_resolution: unsafe extern "C" fn(Handle, c_int),
    recognize: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    get_utf8_text: unsafe extern "C" fn(Handle) -> *mut c_char,
    delete_text: unsafe extern "C" fn(*const c_char),
    mean_text_conf: unsafe extern "C" fn(Handle) -> c_int,
    clear: unsafe extern "C" fn(Handle),
}

/// An opened `libtesseract`.
pub struct Library {
    api: Api,
    location: String,
    version: String,
    // Last: the functions above point into it.
    _library: libloading::Library,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("location", &self.location)
            .field("version", &self.version)
            .finish()
    }
}

/// Why no Tesseract library could be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Each place tried, with what the loader said.
    pub tried: Vec<(String, String)>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tried.as_slice() {
            [] => f.write_str("no place to look for libtesseract was given"),
            [(place, error)] => write!(f, "could not open {place}: {error}"),
            tried => {
                f.write_str("libtesseract was not found (tried ")?;
                for (i, (place, _)) in tried.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}{place}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Where a system's Tesseract 5 (or 4, whose C API is the same for these calls) usually is:
/// first the names the dynamic loader resolves itself, then the usual install folders, for
/// systems whose loader does not search them.
pub fn usual_locations() -> Vec<PathBuf> {
    let names: &[&str] = if cfg!(target_os = "macos") {
        &["libtesseract.5.dylib", "libtesseract.dylib"]
    } else {
        &["libtesseract.so.5", "libtesseract.so", "libtesseract.so.4"]
    };
    let folders: &[&str] = if cfg!(target_os = "macos") {
        &["/opt/homebrew/lib", "/usr/local/lib", "/opt/local/lib"]
    } else {
        &[
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/lib",
            "/usr/local/lib64",
        ]
    };
    let bare = names.iter().map(PathBuf::from);
    let placed = folders
        .iter()
        .flat_map(|folder| names.iter().map(move |name| Path::new(folder).join(name)));
    bare.chain(placed).collect()
}

impl Library {
    /// Opens the first of `candidates` that loads and has the functions this crate binds.
    /// A bare file name is looked up by the system's loader (its cache, `LD_LIBRARY_PATH`);
    /// a path is opened as it is.
    pub fn open_first(
        candidates: impl IntoIterator<Item = PathBuf>,
    ) -> Result<Arc<Library>, LoadError> {
        let mut tried = Vec::new();
        for candidate in candidates {
            match Library::open(&candidate) {
                Ok(library) => return Ok(library),
                Err(mut error) => tried.append(&mut error.tried),
            }
        }
        Err(LoadError { tried })
    }

    /// Opens the library at `path` (or by file name, through the system's loader).
    pub fn open(path: &Path) -> Result<Arc<Library>, LoadError> {
        let location = path.display().to_string();
        let failed = |error: String| LoadError {
            tried: vec![(location.clone(), error)],
        };
        // SAFETY: loading a library runs its initialisers. Tesseract's are C++ static
        // constructors that set up its parameter tables and touch nothing of ours.
        let library = unsafe { libloading::Library::new(path.as_os_str()) }
            .map_err(|e| failed(loader_message(&e)))?;
        let api = bind(&library).map_err(failed)?;
        // SAFETY: TessVersion takes nothing and returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr((api.version)()) }
            .to_string_lossy()
            .into_owned();
        Ok(Arc::new(Library {
            api,
            location,
            version,
            _library: library,
        }))
    }

    /// Where it was opened from, as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The version the library reports, e.g. `5.3.0`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The loader's message without the library's own path repeated in front of it.
fn loader_message(error: &libloading::Error) -> String {
    use std::error::Error as _;
    match error.source() {
        Some(source) => source.to_string(),
        None => error.to_string(),
    }
}

/// Copies the function `name` out of `library`.
///
/// # Safety
/// `T` must be the function-pointer type of `name`'s C signature, and the pointer must be
/// used only while `library` is alive.
unsafe fn function<T: Copy>(library: &libloading::Library, name: &str) -> Result<T, String> {
    let symbol = format!("{name}\0");
    // SAFETY: the caller guarantees the type; a missing symbol is an error, not UB.
    let found = unsafe { library.get::<T>(symbol.as_bytes()) };
    found
        .map(|symbol| *symbol)
        .map_err(|e| format!("it has no {name} ({})", loader_message(&e)))
}

fn bind(library: &libloading::Library) -> Result<Api, String> {
    // SAFETY: each name is declared in Tesseract's capi.h with the signature of the field it
    // fills (the same in 4.1 and 5.x); the pointers live in `Api`, which is only used while
    // the library is (see `Api`).
    unsafe {
        Ok(Api {
            version: function(library, "TessVersion")?,
            create: function(library, "TessBaseAPICreate")?,
            delete: function(library, "TessBaseAPIDelete")?,
            init3: function(library, "TessBaseAPIInit3")?,
            end: function(library, "TessBaseAPIEnd")?,
            set_page_seg_mode: function(library, "TessBaseAPISetPageSegMode")?,
            set_image: function(library, "TessBaseAPISetImage")?,
            set_source_resolution: function(library, "TessBaseAPISetSourceResolution")?,
            recognize: function(library, "TessBaseAPIRecognize")?,
            get_utf8_text: function(library, "TessBaseAPIGetUTF8Text")?,
            delete_text: function(library, "TessDeleteText")?,
            mean_text_conf: function(library, "TessBaseAPIMeanTextConf")?,
            clear: function(library, "TessBaseAPIClear")?,
        })
    }
}

/// How Tesseract finds the lines on a page (its `PageSegMode`, as numbered in `publictypes.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PageSegMode {
    /// 3: automatic layout analysis, without orientation detection (the CLI's default).
    Auto = 3,
    /// 4: one column of text of varying sizes.
    SingleColumn = 4,
    /// 6: one uniform block of text (the library's default).
    SingleBlock = 6,
    /// 11: as much text as possible, in no particular order.
    SparseText = 11,
}

/// A page image: `height` rows of `bytes_per_line` bytes, `bytes_per_pixel` bytes a pixel
/// (1 for 8-bit grey, 3 for RGB, 4 for RGBA).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// The pixels, rows top to bottom.
    pub pixels: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per pixel: 1, 3 or 4.
    pub bytes_per_pixel: u32,
    /// Bytes from one row to the next (at least `width * bytes_per_pixel`).
    pub bytes_per_line: u32,
    /// The resolution it was scanned or rendered at, in pixels per inch.
    pub dpi: u32,
}

impl Image<'_> {
    /// An 8-bit grey image with rows packed one after another.
    pub fn grey(pixels: &[u8], width: u32, height: u32, dpi: u32) -> Image<'_> {
        Image {
            pixels,
            width,
            height,
            bytes_per_pixel: 1,
            bytes_per_line: width,
            dpi,
        }
    }

    /// Checks that Tesseract will read only inside `pixels`, and converts the sizes.
    fn dimensions(&self) -> Result<[c_int; 5], Error> {
        let bad = |why: &str| Err(Error::BadImage(why.to_owned()));
        if self.width == 0 || self.height == 0 {
            return bad("the image has no pixels");
        }
        if ![1, 3, 4].contains(&self.bytes_per_pixel) {
            return bad("bytes per pixel must be 1, 3 or 4");
        }
        let row = u64::from(self.width) * u64::from(self.bytes_per_pixel);
        if u64::from(self.bytes_per_line) < row {
            return bad("a row is shorter than its pixels");
        }
        let needed = u64::from(self.bytes_per_line) * u64::from(self.height - 1) + row;
        if (self.pixels.len() as u64) < needed {
            return bad("the buffer is smaller than the image");
        }
        let int =
            |value: u32| c_int::try_from(value).map_err(|_| Error::BadImage("too large".into()));
        Ok([
            int(self.width)?,
            int(self.height)?,
            int(self.bytes_per_pixel)?,
            int(self.bytes_per_line)?,
            int(self.dpi.max(1))?,
        ])
    }
}

/// What Tesseract read on a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// The text, lines ending in `\n`, paragraphs separated by a blank line.
    pub text: String,
    /// The mean word confidence, 0 to 100.
    pub mean_confidence: i32,
}

/// What went wrong in Tesseract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `TessBaseAPICreate` returned nothing (out of memory).
    Create,
    /// The language data could not be loaded (`TessBaseAPIInit3` failed).
    Init {
        /// The languages asked for, e.g. `eng+deu`.
        languages: String,
        /// The folder the data was looked for in, if one was given.
        datapath: Option<PathBuf>,
    },
    /// A language or path held a NUL byte.
    Nul,
    /// The image does not describe its buffer.
    BadImage(String),
    /// Recognition failed.
    Recognise,
    /// Recognition gave no text.
    NoText,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Create => f.write_str("Tesseract could not create an instance"),
            Error::Init {
                languages,
                datapath: Some(datapath),
            } => write!(
                f,
                "Tesseract could not load {languages:?} from {}",
                datapath.display()
            ),
            Error::Init { languages, .. } => write!(f, "Tesseract could not load {languages:?}"),
            Error::Nul => f.write_str("a language or path holds a NUL byte"),
            Error::BadImage(why) => write!(f, "bad page image: {why}"),
            Error::Recognise => f.write_str("Tesseract could not read the page"),
            Error::NoText => f.write_str("Tesseract returned no text"),
        }
    }
}

impl std::error::Error for Error {}

/// One Tesseract instance with its language models loaded: load once, read many pages.
/// Not `Sync`: Tesseract instances must not be used from two threads at once.
pub struct Engine {
    handle: Handle,
    library: Arc<Library>,
}

// SAFETY: a TessBaseAPI belongs to no thread; it may move to another one as long as two are
// never inside it at once, which `&mut self` on every call (and no `Sync`) guarantees.
unsafe impl Send for Engine {}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("library", &self.library)
            .finish()
    }
}

impl Engine {
    /// Loads `languages` (`eng`, `eng+deu`, `script/Latin`) from the `datapath` folder of
    /// `*.traineddata` files, or from where the library looks by itself (`TESSDATA_PREFIX`,
    /// then the folder it was built with) when `datapath` is `None`.
    pub fn new(
        library: Arc<Library>,
        datapath: Option<&Path>,
        languages: &str,
    ) -> Result<Engine, Error> {
        let c_languages = CString::new(languages).map_err(|_| Error::Nul)?;
        let c_datapath = match datapath {
            Some(path) => Some(path_to_cstring(path)?),
            None => None,
        };
        // SAFETY: TessBaseAPICreate takes nothing and returns a new instance or null.
        let handle = unsafe { (library.api.create)() };
        if handle.is_null() {
            return Err(Error::Create);
        }
        // From here the instance is freed by Drop, on the error path too.
        let engine = Engine { handle, library };
        let datapath_ptr = c_datapath.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: the handle is live; both strings are NUL-terminated and outlive the call
        // (Tesseract copies them); a null datapath is documented as "use the default".
        let status = unsafe {
            (engine.library.api.init3)(engine.handle, datapath_ptr, c_languages.as_ptr())
        };
        if status != 0 {
            return Err(Error::Init {
                languages: languages.to_owned(),
                datapath: datapath.map(Path::to_owned),
            });
        }
        Ok(engine)
    }

    /// Reads `image` with page segmentation `mode`.
    pub fn recognise(
        &mut self,
        image: &Image<'_>,
        mode: PageSegMode,
    ) -> Result<Recognition, Error> {
        let [width, height, bytes_per_pixel, bytes_per_line, dpi] = image.dimensions()?;
        let api = self.library.api;
        // SAFETY: the handle is live and used by this thread alone (`&mut self`). The image
        // was checked to lie inside `image.pixels`, which stays borrowed for the whole call;
        // Tesseract copies it into its own buffer in SetImage.
        unsafe {
            (api.set_page_seg_mode)(self.handle, mode as c_int);
            (api.set_image)(
                self.handle,
                image.pixels.as_ptr(),
                width,
                height,
                bytes_per_pixel,
                bytes_per_line,
            );
            (api.set_source_resolution)(self.handle, dpi);
        }
        let result = self.read_text();
        // SAFETY: the handle is live; Clear frees the image and results, keeping the models.
        unsafe { (api.clear)(self.handle) };
        result
    }

    fn read_text(&mut self) -> Result<Recognition, Error> {
        let api = self.library.api;
        // SAFETY: the handle is live and holds an image; a null monitor means "no progress
        // reports, no deadline".
        if unsafe { (api.recognize)(self.handle, std::ptr::null_mut()) } != 0 {
            return Err(Error::Recognise);
        }
        // SAFETY: the handle is live and recognised; the text it returns is ours to free with
        // TessDeleteText, which happens once, after it is copied.
        let text = unsafe {
            let raw = (api.get_utf8_text)(self.handle);
            if raw.is_null() {
                return Err(Error::NoText);
            }
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (api.delete_text)(raw);
            text
        };
        // SAFETY: the handle is live and recognised.
        let mean_confidence = unsafe { (api.mean_text_conf)(self.handle) };
        Ok(Recognition {
            text,
            mean_confidence,
        })
    }

    /// The library this instance runs in.
    pub fn library(&self) -> &Library {
        &self.library
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle came from TessBaseAPICreate, is live, and is never used again.
        unsafe {
            (self.library.api.end)(self.handle);
            (self.library.api.delete)(self.handle);
        }
    }
}

#[cfg(unix)]
fn path_to_cstring(path: &Path) -> Result<CString, Error> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Nul)
}

#[cfg(not(unix))]
fn path_to_cstring(path: &Path) -> Result<CString, Error> {
    CString::new(path.to_string_lossy().into_owned()).map_err(|_| Error::Nul)
}

#[cfg(test)]
mod tests;
