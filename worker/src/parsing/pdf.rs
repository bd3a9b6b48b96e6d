//! PDF: the text of every page, in reading order as pdf-extract finds it.

pub fn text(bytes: &[u8]) -> Result<String, String> {
    match pdf_extract::extract_text_from_mem(bytes) {
        Ok(t) => Ok(super::tidy(&t)),
        Err(e) => {
            let e = e.to_string();
            let lower = e.to_ascii_lowercase();
            // pdf-extract opens documents encrypted with an empty password;
            // others need one, which a vectorizer cannot give.
            if lower.contains("decrypt") || lower.contains("password") {
                Err(format!("encrypted, and no password opens it ({e})"))
            } else {
                Err(e)
            }
        }
    }
}
