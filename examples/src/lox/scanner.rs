//! The scanner: source bytes to tokens, on demand (the compiler pulls one token at a time,
//! as clox's does). Works on bytes, not chars: like clox, a non-ASCII byte outside a string
//! or comment is an "Unexpected character.".

/// Token types, clox's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TokenType {
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    Comma,
    Dot,
    Minus,
    Plus,
    Semicolon,
    Slash,
    Star,
    Bang,
    BangEqual,
    Equal,
    EqualEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Identifier,
    String,
    Number,
    And,
    Class,
    Else,
    False,
    For,
    Fun,
    If,
    Nil,
    Or,
    Print,
    Return,
    Super,
    This,
    True,
    Var,
    While,
    /// A scanning error; the lexeme is the message.
    Error,
    Eof,
}

/// A token: its type, its text (or error message) and its line.
#[derive(Clone, Copy, Debug)]
pub struct Token<'s> {
    pub kind: TokenType,
    pub lexeme: &'s [u8],
    pub line: u32,
}

impl<'s> Token<'s> {
    /// A token that is not in the source (`this`, `super` made up by the compiler).
    pub fn synthetic(text: &'static str) -> Token<'s> {
        Token {
            kind: TokenType::Identifier,
            lexeme: text.as_bytes(),
            line: 0,
        }
    }
}

/// Scans one source text.
pub struct Scanner<'s> {
    src: &'s [u8],
    start: usize,
    current: usize,
    line: u32,
}

fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

impl<'s> Scanner<'s> {
    pub fn new(src: &'s [u8]) -> Scanner<'s> {
        Scanner {
            src,
            start: 0,
            current: 0,
            line: 1,
        }
    }

    fn peek(&self) -> u8 {
        self.src.get(self.current).copied().unwrap_or(0)
    }

    fn peek_next(&self) -> u8 {
        self.src.get(self.current + 1).copied().unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.current >= self.src.len()
    }

    fn advance(&mut self) -> u8 {
        self.current += 1;
        self.src[self.current - 1]
    }

    fn matches(&mut self, c: u8) -> bool {
        if self.at_end() || self.src[self.current] != c {
            return false;
        }
        self.current += 1;
        true
    }

    fn make(&self, kind: TokenType) -> Token<'s> {
        Token {
            kind,
            lexeme: &self.src[self.start..self.current],
            line: self.line,
        }
    }

    fn error(&self, message: &'static str) -> Token<'s> {
        Token {
            kind: TokenType::Error,
            lexeme: message.as_bytes(),
            line: self.line,
        }
    }

    fn skip_whitespace(&mut self) {
        loop {
            match self.peek() {
                b' ' | b'\r' | b'\t' => {
                    self.current += 1;
                }
                b'\n' => {
                    self.line += 1;
                    self.current += 1;
                }
                b'/' if self.peek_next() == b'/' => {
                    while self.peek() != b'\n' && !self.at_end() {
                        self.current += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// The next token (`Eof` forever at the end).
    pub fn scan_token(&mut self) -> Token<'s> {
        self.skip_whitespace();
        self.start = self.current;
        if self.at_end() {
            return self.make(TokenType::Eof);
        }
        let c = self.advance();
        if is_alpha(c) {
            return self.identifier();
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        use TokenType::*;
        match c {
            b'(' => self.make(LeftParen),
            b')' => self.make(RightParen),
            b'{' => self.make(LeftBrace),
            b'}' => self.make(RightBrace),
            b';' => self.make(Semicolon),
            b',' => self.make(Comma),
            b'.' => self.make(Dot),
            b'-' => self.make(Minus),
            b'+' => self.make(Plus),
            b'/' => self.make(Slash),
            b'*' => self.make(Star),
            b'!' => {
                let k = if self.matches(b'=') { BangEqual } else { Bang };
                self.make(k)
            }
            b'=' => {
                let k = if self.matches(b'=') {
                    EqualEqual
                } else {
                    Equal
                };
                self.make(k)
            }
            b'<' => {
                let k = if self.matches(b'=') { LessEqual } else { Less };
                self.make(k)
            }
            b'>' => {
                let k = if self.matches(b'=') {
                    GreaterEqual
                } else {
                    Greater
                };
                self.make(k)
            }
            b'"' => self.string(),
            _ => self.error("Unexpected character."),
        }
    }

    fn string(&mut self) -> Token<'s> {
        while self.peek() != b'"' && !self.at_end() {
            if self.peek() == b'\n' {
                self.line += 1;
            }
            self.current += 1;
        }
        if self.at_end() {
            return self.error("Unterminated string.");
        }
        self.current += 1;
        self.make(TokenType::String)
    }

    fn number(&mut self) -> Token<'s> {
        while self.peek().is_ascii_digit() {
            self.current += 1;
        }
        if self.peek() == b'.' && self.peek_next().is_ascii_digit() {
            self.current += 1;
            while self.peek().is_ascii_digit() {
                self.current += 1;
            }
        }
        self.make(TokenType::Number)
    }

    fn identifier(&mut self) -> Token<'s> {
        while is_alpha(self.peek()) || self.peek().is_ascii_digit() {
            self.current += 1;
        }
        self.make(self.identifier_type())
    }

    fn identifier_type(&self) -> TokenType {
        use TokenType::*;
        match &self.src[self.start..self.current] {
            b"and" => And,
            b"class" => Class,
            b"else" => Else,
            b"false" => False,
            b"for" => For,
            b"fun" => Fun,
            b"if" => If,
            b"nil" => Nil,
            b"or" => Or,
            b"print" => Print,
            b"return" => Return,
            b"super" => Super,
            b"this" => This,
            b"true" => True,
            b"var" => Var,
            b"while" => While,
            _ => Identifier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenType> {
        let mut s = Scanner::new(src.as_bytes());
        let mut out = vec![];
        loop {
            let t = s.scan_token();
            out.push(t.kind);
            if t.kind == TokenType::Eof {
                return out;
            }
        }
    }

    #[test]
    fn scans_operators_keywords_and_literals() {
        use TokenType::*;
        assert_eq!(
            kinds("var x = 1.5 != 2; // c\n\"s\" <= classy class"),
            vec![
                Var, Identifier, Equal, Number, BangEqual, Number, Semicolon, String, LessEqual,
                Identifier, Class, Eof
            ]
        );
        assert_eq!(
            kinds("1."),
            vec![Number, Dot, Eof],
            "a trailing dot is not the number's"
        );
        assert_eq!(kinds(".5"), vec![Dot, Number, Eof]);
        assert_eq!(kinds("@"), vec![Error, Eof]);
    }

    #[test]
    fn strings_span_lines_and_tokens_take_the_line_they_end_on() {
        let mut s = Scanner::new(b"\"a\nb\" x");
        let t = s.scan_token();
        assert_eq!(
            (t.kind, t.line, t.lexeme),
            (TokenType::String, 2, &b"\"a\nb\""[..])
        );
        let mut s = Scanner::new(b"\n\"open");
        let t = s.scan_token();
        assert_eq!(
            (t.kind, t.line, t.lexeme),
            (TokenType::Error, 2, &b"Unterminated string."[..])
        );
    }
}
