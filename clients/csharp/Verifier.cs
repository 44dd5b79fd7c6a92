// edgeflow reference verifier (C#, single file): docs/manifest.md's verification algorithm.
//
// What a C# bot must do before it loads a model: read the signed pointer (the envelope
// LATEST, or the legacy LATEST + LATEST.sig pair), check its HMAC-SHA256 signature with a key
// it holds, refuse a replayed or expired pointer, check the manifest's signature and that it
// is the one the pointer names, then every file's size and SHA-256. Only then are the bytes
// it hashed handed to the model loader. It prints the verified version or the reason it
// refused (the error codes of docs/manifest.md), and keeps the last accepted pointer in a
// state file so a replayed older pointer is refused across restarts.
//
// Build:  mcs -out:Verifier.exe clients/csharp/Verifier.cs
// Run:    mono Verifier.exe --store DIR --model NAME --key ID:HEX [--key ID:HEX ...]
//              [--revoked ID ...] [--scope ID:MODEL,...] [--state FILE] [--now 2026-01-02T00:00:00Z]
//              [--max-age-seconds N] [--min-sequence N] [--out DIR] [--pointer LATEST|CHALLENGER]
// Exit:   0 verified (stdout: "VERIFIED model=... version=... sequence=..."),
//         2 refused  (stdout: "REFUSED <code>: <reason>"), 64 usage error,
//         3 no challenger stands (--pointer CHALLENGER only; stdout: "WITHDRAWN model=...
//           sequence=...": a signed withdrawal, recorded in the state file like a pointer).
//
// --pointer CHALLENGER verifies the challenger a bot shadows (docs/bot.md) exactly as LATEST:
// the same envelope, signature, sequence (its own, with its own --state file and history
// under <model>/challenger-pointers/), expiry, manifest and file checks; its payload schema
// is edgeflow.challenger/1, so a challenger envelope is refused as LATEST and the reverse.
//
// It does not parse ONNX: the loader must still refuse a model whose tensors reference
// external data (docs/manifest.md step 10) before handing the bytes to ONNX Runtime.
//
// Scope: HMAC-SHA256 keys (Mono's class library has no Ed25519; an Ed25519-signed document is
// refused as wrong-key). File stores (a folder, the layout of file:// stores); an S3 bot does
// the same checks on the bytes it downloads.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Edgeflow
{
    public sealed class Refusal : Exception
    {
        public readonly string Code;

        public Refusal(string code, string message) : base(message)
        {
            Code = code;
        }
    }

    // ------------------------------------------------------------------ JSON
    // A strict parser that keeps number tokens, and the canonical serializer of
    // docs/manifest.md (Python's json.dumps(sort_keys=True, separators=(",", ":"),
    // ensure_ascii=False)), so "is this document canonical" is parse-then-compare bytes.

    public sealed class JsonNumber
    {
        public readonly string Raw;
        public readonly bool IsInteger;

        public JsonNumber(string raw, bool isInteger)
        {
            Raw = raw;
            IsInteger = isInteger;
        }
    }

    public sealed class JsonNull
    {
        public static readonly JsonNull Value = new JsonNull();
    }

    public sealed class JsonObject
    {
        public readonly List<KeyValuePair<string, object>> Pairs = new List<KeyValuePair<string, object>>();
        public readonly Dictionary<string, object> Map = new Dictionary<string, object>(StringComparer.Ordinal);

        public bool Has(string key)
        {
            return Map.ContainsKey(key);
        }

        public object Get(string key)
        {
            object v;
            return Map.TryGetValue(key, out v) ? v : null;
        }
    }

    public sealed class JsonError : Exception
    {
        public JsonError(string message) : base(message) { }
    }

    public static class Json
    {
        public const int MaxDepth = 32;
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        public static object Parse(byte[] bytes)
        {
            string text;
            try
            {
                text = StrictUtf8.GetString(bytes);
            }
            catch (ArgumentException)
            {
                throw new JsonError("not valid UTF-8");
            }
            var p = new Parser(text);
            p.SkipWs();
            object v = p.Value(0);
            p.SkipWs();
            if (p.Pos != text.Length) throw new JsonError("trailing data after the JSON value");
            return v;
        }

        sealed class Parser
        {
            readonly string s;
            public int Pos;

            public Parser(string text)
            {
                s = text;
            }

            public void SkipWs()
            {
                while (Pos < s.Length && (s[Pos] == ' ' || s[Pos] == '\t' || s[Pos] == '\n' || s[Pos] == '\r')) Pos++;
            }

            char Peek()
            {
                if (Pos >= s.Length) throw new JsonError("unexpected end of document");
                return s[Pos];
            }

            void Expect(string word)
            {
                if (string.CompareOrdinal(s, Pos, word, 0, word.Length) != 0) throw new JsonError("invalid literal at " + Pos);
                Pos += word.Length;
            }

            public object Value(int depth)
            {
                char c = Peek();
                if (c == '{' || c == '[')
                {
                    if (depth + 1 > MaxDepth) throw new JsonError("nesting deeper than " + MaxDepth);
                    return c == '{' ? (object)Obj(depth + 1) : Arr(depth + 1);
                }
                if (c == '"') return Str();
                if (c == 't') { Expect("true"); return true; }
                if (c == 'f') { Expect("false"); return false; }
                if (c == 'n') { Expect("null"); return JsonNull.Value; }
                return Num();
            }

            JsonObject Obj(int depth)
            {
                var o = new JsonObject();
                Pos++;
                SkipWs();
                if (Peek() == '}') { Pos++; return o; }
                while (true)
                {
                    SkipWs();
                    if (Peek() != '"') throw new JsonError("object key expected at " + Pos);
                    string k = Str();
                    SkipWs();
                    if (Peek() != ':') throw new JsonError("':' expected at " + Pos);
                    Pos++;
                    SkipWs();
                    object v = Value(depth);
                    if (o.Map.ContainsKey(k)) throw new JsonError("duplicate key '" + k + "'");
                    o.Map[k] = v;
                    o.Pairs.Add(new KeyValuePair<string, object>(k, v));
                    SkipWs();
                    char c = Peek();
                    Pos++;
                    if (c == '}') return o;
                    if (c != ',') throw new JsonError("',' or '}' expected at " + (Pos - 1));
                }
            }

            List<object> Arr(int depth)
            {
                var a = new List<object>();
                Pos++;
                SkipWs();
                if (Peek() == ']') { Pos++; return a; }
                while (true)
                {
                    SkipWs();
                    a.Add(Value(depth));
                    SkipWs();
                    char c = Peek();
                    Pos++;
                    if (c == ']') return a;
                    if (c != ',') throw new JsonError("',' or ']' expected at " + (Pos - 1));
                }
            }

            string Str()
            {
                var sb = new StringBuilder();
                Pos++;
                while (true)
                {
                    char c = Peek();
                    Pos++;
                    if (c == '"') break;
                    if (c < 0x20) throw new JsonError("control character in a string");
                    if (c != '\\') { sb.Append(c); continue; }
                    char e = Peek();
                    Pos++;
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (Pos + 4 > s.Length) throw new JsonError("short \\u escape");
                            int code;
                            if (!int.TryParse(s.Substring(Pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                                throw new JsonError("bad \\u escape");
                            sb.Append((char)code);
                            Pos += 4;
                            break;
                        default:
                            throw new JsonError("bad escape \\" + e);
                    }
                }
                string str = sb.ToString();
                for (int i = 0; i < str.Length; i++)
                {
                    if (char.IsHighSurrogate(str[i]) && i + 1 < str.Length && char.IsLowSurrogate(str[i + 1])) { i++; continue; }
                    if (char.IsSurrogate(str[i])) throw new JsonError("lone surrogate in a string");
                }
                return str;
            }

            JsonNumber Num()
            {
                int start = Pos;
                if (Pos < s.Length && s[Pos] == '-') Pos++;
                int intStart = Pos;
                while (Pos < s.Length && char.IsDigit(s[Pos]) && s[Pos] < 128) Pos++;
                if (Pos == intStart) throw new JsonError("invalid value at " + start);
                if (s[intStart] == '0' && Pos - intStart > 1) throw new JsonError("leading zero in a number");
                bool isInt = true;
                if (Pos < s.Length && s[Pos] == '.')
                {
                    isInt = false;
                    Pos++;
                    int f = Pos;
                    while (Pos < s.Length && s[Pos] >= '0' && s[Pos] <= '9') Pos++;
                    if (Pos == f) throw new JsonError("digits expected after '.'");
                }
                if (Pos < s.Length && (s[Pos] == 'e' || s[Pos] == 'E'))
                {
                    isInt = false;
                    Pos++;
                    if (Pos < s.Length && (s[Pos] == '+' || s[Pos] == '-')) Pos++;
                    int f = Pos;
                    while (Pos < s.Length && s[Pos] >= '0' && s[Pos] <= '9') Pos++;
                    if (Pos == f) throw new JsonError("digits expected in an exponent");
                }
                return new JsonNumber(s.Substring(start, Pos - start), isInt);
            }
        }

        // Canonical bytes of a parsed value; JsonError where Python could not have written it.
        public static byte[] Canonical(object value)
        {
            var sb = new StringBuilder();
            Write(sb, value);
            return StrictUtf8.GetBytes(sb.ToString());
        }

        static int CompareCodePoints(string a, string b)
        {
            byte[] x = StrictUtf8.GetBytes(a), y = StrictUtf8.GetBytes(b);
            int n = Math.Min(x.Length, y.Length);
            for (int i = 0; i < n; i++)
                if (x[i] != y[i]) return x[i] - y[i];
            return x.Length - y.Length;
        }

        static void Write(StringBuilder sb, object v)
        {
            if (v is JsonObject)
            {
                var pairs = new List<KeyValuePair<string, object>>(((JsonObject)v).Pairs);
                pairs.Sort((p, q) => CompareCodePoints(p.Key, q.Key));
                sb.Append('{');
                for (int i = 0; i < pairs.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    WriteString(sb, pairs[i].Key);
                    sb.Append(':');
                    Write(sb, pairs[i].Value);
                }
                sb.Append('}');
            }
            else if (v is List<object>)
            {
                var a = (List<object>)v;
                sb.Append('[');
                for (int i = 0; i < a.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    Write(sb, a[i]);
                }
                sb.Append(']');
            }
            else if (v is string) WriteString(sb, (string)v);
            else if (v is bool) sb.Append((bool)v ? "true" : "false");
            else if (v is JsonNull) sb.Append("null");
            else if (v is JsonNumber) sb.Append(CanonicalNumber((JsonNumber)v));
            else throw new JsonError("unknown value type");
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        static string CanonicalNumber(JsonNumber n)
        {
            if (n.IsInteger)
            {
                if (n.Raw == "-0") return "0";
                return n.Raw;
            }
            double d;
            if (!double.TryParse(n.Raw, NumberStyles.Float, CultureInfo.InvariantCulture, out d) || double.IsInfinity(d) || double.IsNaN(d))
                throw new JsonError("number " + n.Raw + " is not a finite double");
            return PyRepr(d);
        }

        // Python's repr(float): the shortest digits that round-trip, exponent form outside
        // 1e-4 <= |d| < 1e16.
        public static string PyRepr(double d)
        {
            if (d == 0.0) return BitConverter.DoubleToInt64Bits(d) < 0 ? "-0.0" : "0.0";
            string e = null;
            for (int p = 0; p <= 16; p++)
            {
                e = d.ToString("E" + p, CultureInfo.InvariantCulture);
                // near double.MaxValue a short form rounds past it: Parse would throw
                double back;
                if (double.TryParse(e, NumberStyles.Float, CultureInfo.InvariantCulture, out back) && back == d) break;
            }
            bool neg = e[0] == '-';
            if (neg) e = e.Substring(1);
            int ePos = e.IndexOf('E');
            string mant = e.Substring(0, ePos).Replace(".", "");
            int exp = int.Parse(e.Substring(ePos + 1), CultureInfo.InvariantCulture);
            mant = mant.TrimEnd('0');
            if (mant.Length == 0) mant = "0";
            string body;
            if (exp < -4 || exp >= 16)
            {
                body = mant.Substring(0, 1) + (mant.Length > 1 ? "." + mant.Substring(1) : "")
                    + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
            }
            else if (exp >= 0)
            {
                string intPart = mant.Length > exp + 1 ? mant.Substring(0, exp + 1) : mant.PadRight(exp + 1, '0');
                string frac = mant.Length > exp + 1 ? mant.Substring(exp + 1) : "0";
                body = intPart + "." + frac;
            }
            else
            {
                body = "0." + new string('0', -exp - 1) + mant;
            }
            return (neg ? "-" : "") + body;
        }
    }

    // ------------------------------------------------------------------ store
    // A file store read as docs/manifest.md asks: never through a symlink, FIFO or device,
    // and never past an object's limit.
    public sealed class FileStoreReader
    {
        readonly string root;

        [DllImport("libc", EntryPoint = "lstat", SetLastError = true)]
        static extern int lstat(string path, byte[] buf);

        public FileStoreReader(string root)
        {
            this.root = Path.GetFullPath(root);
        }

        // st_mode of path without following a symlink, or -1 when unknown (then the managed
        // attributes decide: they see symlinks but not FIFOs).
        static int Mode(string path)
        {
            int offset;
            if (RuntimeInformation.ProcessArchitecture == Architecture.X64) offset = 24;
            else if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64) offset = 16;
            else return -1;
            var buf = new byte[256];
            try
            {
                if (lstat(path, buf) != 0) return -2;
            }
            catch (EntryPointNotFoundException)
            {
                return -1;
            }
            catch (DllNotFoundException)
            {
                return -1;
            }
            return BitConverter.ToInt32(buf, offset) & 0xF000;
        }

        const int IfDir = 0x4000, IfReg = 0x8000;

        // The names of the plain entries of the folder <root>/<key> (empty when it is missing
        // or is not a real folder: a symlinked or planted folder lists nothing). Each entry is
        // read through Read, which refuses what is not a regular file.
        public List<string> List(string key)
        {
            var names = new List<string>();
            string path = root;
            foreach (string part in key.Split('/'))
            {
                path = Path.Combine(path, part);
                if (!Directory.Exists(path)) return names;
                if ((File.GetAttributes(path) & FileAttributes.ReparsePoint) != 0) return names;
                int mode = Mode(path);
                if (mode >= 0 && mode != IfDir) return names;
            }
            foreach (string entry in Directory.GetFileSystemEntries(path)) names.Add(Path.GetFileName(entry));
            return names;
        }

        // The bytes of <root>/<key> (at most limit + 1 read), or null when it does not exist.
        public byte[] Read(string key, long limit)
        {
            string[] parts = key.Split('/');
            string path = root;
            for (int i = 0; i < parts.Length; i++)
            {
                path = Path.Combine(path, parts[i]);
                bool leaf = i == parts.Length - 1;
                if (!File.Exists(path) && !Directory.Exists(path))
                {
                    if ((File.GetAttributes(Path.GetDirectoryName(path)) & FileAttributes.Directory) == 0) return null;
                    try
                    {
                        if ((File.GetAttributes(path) & FileAttributes.ReparsePoint) != 0)
                            throw new Refusal("unsafe-object", key + ": " + path + " is a symlink");
                    }
                    catch (FileNotFoundException) { }
                    catch (DirectoryNotFoundException) { }
                    return null;
                }
                FileAttributes attrs = File.GetAttributes(path);
                if ((attrs & FileAttributes.ReparsePoint) != 0)
                    throw new Refusal("unsafe-object", key + ": " + path + " is a symlink");
                int mode = Mode(path);
                if (mode >= 0 && mode != (leaf ? IfReg : IfDir))
                    throw new Refusal("unsafe-object", key + ": " + path + " is not a regular " + (leaf ? "file" : "folder"));
                if (!leaf && (attrs & FileAttributes.Directory) == 0) return null;
                if (leaf && (attrs & FileAttributes.Directory) != 0)
                    throw new Refusal("unsafe-object", key + ": " + path + " is a folder");
            }
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                var ms = new MemoryStream();
                var buf = new byte[65536];
                long total = 0;
                int n;
                while ((n = fs.Read(buf, 0, (int)Math.Min(buf.Length, limit + 1 - total))) > 0)
                {
                    ms.Write(buf, 0, n);
                    total += n;
                    if (total > limit) throw new Refusal("too-large", key + " is larger than its limit of " + limit + " bytes");
                }
                return ms.ToArray();
            }
        }
    }

    // ------------------------------------------------------------------ verifier
    public sealed class Verified
    {
        public string Model, Version, ManifestSha256, Form;
        public long Sequence;
        public bool AlreadyAccepted, Withdrawn;
        public Dictionary<string, byte[]> Files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
    }

    public sealed class State
    {
        public string Model, Version, ManifestSha256;
        public long Sequence;
    }

    public sealed class ModelVerifier
    {
        public const string PayloadType = "application/vnd.edgeflow.pointer+json";
        const string KeyCheckMessage = "edgeflow-key-check-v1";
        const long EnvelopeLimit = 64 * 1024, PayloadLimit = 16 * 1024, ManifestLimit = 1024 * 1024, SigLimit = 256;
        const long MaxSequence = 9007199254740991L; // 2^53 - 1
        static readonly Regex ModelRe = new Regex("^[a-z][a-z0-9_-]{0,63}$");
        static readonly Regex VersionRe = new Regex("^v[0-9]{6,12}$");
        static readonly Regex HexSig = new Regex("^[0-9a-f]{64}$");
        static readonly Regex Sha = new Regex("^[0-9a-f]{64}$");
        static readonly Regex Segment = new Regex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$");
        static readonly Regex TsRe = new Regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$");
        static readonly string[] Kinds = { "publish", "rollback", "heartbeat" };
        static readonly string[] ChallengerKinds = { "publish", "heartbeat", "withdraw" };

        // "LATEST" (what the bot serves) or "CHALLENGER" (what it shadows).
        public string PointerName = "LATEST";
        bool Challenger { get { return PointerName == "CHALLENGER"; } }
        string HistoryFolder { get { return Challenger ? "/challenger-pointers" : "/pointers"; } }

        readonly FileStoreReader store;
        readonly Dictionary<string, byte[]> keys;
        readonly HashSet<string> revoked;
        readonly Dictionary<string, HashSet<string>> scopes;

        public ModelVerifier(FileStoreReader store, Dictionary<string, byte[]> keys, HashSet<string> revoked,
            Dictionary<string, HashSet<string>> scopes)
        {
            this.store = store;
            this.keys = keys;
            this.revoked = revoked;
            this.scopes = scopes;
        }

        static string Hex(byte[] b)
        {
            var sb = new StringBuilder(b.Length * 2);
            foreach (byte x in b) sb.Append(x.ToString("x2", CultureInfo.InvariantCulture));
            return sb.ToString();
        }

        public static string Sha256Hex(byte[] data)
        {
            using (var sha = SHA256.Create()) return Hex(sha.ComputeHash(data));
        }

        static byte[] Hmac(byte[] key, byte[] data)
        {
            using (var h = new HMACSHA256(key)) return h.ComputeHash(data);
        }

        public static string KeyCheck(byte[] key)
        {
            return Hex(Hmac(key, Encoding.ASCII.GetBytes(KeyCheckMessage))).Substring(0, 16);
        }

        static bool ConstantTimeEquals(string a, string b)
        {
            if (a.Length != b.Length) return false;
            int diff = 0;
            for (int i = 0; i < a.Length; i++) diff |= a[i] ^ b[i];
            return diff == 0;
        }

        public static byte[] Pae(string type, byte[] payload)
        {
            byte[] head = Encoding.UTF8.GetBytes("DSSEv1 " + Encoding.UTF8.GetByteCount(type) + " " + type + " " + payload.Length + " ");
            var all = new byte[head.Length + payload.Length];
            Buffer.BlockCopy(head, 0, all, 0, head.Length);
            Buffer.BlockCopy(payload, 0, all, head.Length, payload.Length);
            return all;
        }

        static JsonObject ParseObject(byte[] bytes, string what, string code)
        {
            object v;
            try
            {
                v = Json.Parse(bytes);
            }
            catch (JsonError e)
            {
                throw new Refusal(code, what + " is not valid JSON: " + e.Message);
            }
            var o = v as JsonObject;
            if (o == null) throw new Refusal(code, what + " is not a JSON object");
            return o;
        }

        static void RequireCanonical(byte[] bytes, object parsed, string what, string code)
        {
            byte[] canon;
            try
            {
                canon = Json.Canonical(parsed);
            }
            catch (JsonError e)
            {
                throw new Refusal(code, what + " is not canonical JSON: " + e.Message);
            }
            if (canon.Length != bytes.Length) throw new Refusal(code, what + " is not canonical JSON");
            for (int i = 0; i < canon.Length; i++)
                if (canon[i] != bytes[i]) throw new Refusal(code, what + " is not canonical JSON");
        }

        static string Str(JsonObject o, string field, string what, string code)
        {
            var s = o.Get(field) as string;
            if (s == null) throw new Refusal(code, what + ": field '" + field + "' is missing or not a string");
            return s;
        }

        static long Int(JsonObject o, string field, string what, string code)
        {
            var n = o.Get(field) as JsonNumber;
            long v;
            if (n == null || !n.IsInteger || !long.TryParse(n.Raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v))
                throw new Refusal(code, what + ": field '" + field + "' is missing or not an integer");
            return v;
        }

        static DateTime Ts(JsonObject o, string field, string what, string code)
        {
            string s = Str(o, field, what, code);
            DateTime t;
            if (!TsRe.IsMatch(s) || !DateTime.TryParseExact(s, "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture,
                    DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out t))
                throw new Refusal(code, what + ": field '" + field + "' is not a UTC timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ");
            return t;
        }

        // Steps 2-3 (and 7): who signed, with a key we hold, and does the signature check out.
        void CheckSignature(byte[] signed, JsonObject doc, string sigHex, string what, string invalidCode, string model)
        {
            string keyId = Str(doc, "key_id", what, invalidCode);
            string algorithm = Str(doc, "algorithm", what, invalidCode);
            string keyCheck = Str(doc, "key_check", what, invalidCode);
            byte[] key;
            if (!keys.TryGetValue(keyId, out key))
                throw new Refusal("unknown-key-id", what + " is signed with key id '" + keyId + "', which this verifier does not hold");
            if (revoked.Contains(keyId)) throw new Refusal("revoked-key", what + " is signed with revoked key id '" + keyId + "'");
            if (algorithm != "hmac-sha256")
                throw new Refusal("wrong-key", what + " claims algorithm '" + algorithm + "' but key '" + keyId + "' is hmac-sha256");
            if (!HexSig.IsMatch(sigHex)) throw new Refusal("signature-malformed", what + ": signature is not 64 lowercase hex characters");
            if (!ConstantTimeEquals(keyCheck, KeyCheck(key)))
                throw new Refusal("wrong-key", what + ": key_check " + keyCheck + " is not the held key '" + keyId + "'");
            if (!ConstantTimeEquals(Hex(Hmac(key, signed)), sigHex))
                throw new Refusal("signature-mismatch", what + ": HMAC-SHA256 signature does not match the bytes");
            HashSet<string> allowed;
            if (scopes.TryGetValue(keyId, out allowed) && !allowed.Contains(model))
                throw new Refusal("wrong-key", what + ": key '" + keyId + "' may not sign model '" + model + "' (its scope)");
        }

        static string SigText(byte[] raw, string what)
        {
            foreach (byte b in raw)
                if (b > 127) throw new Refusal("signature-malformed", what + " is not ASCII");
            return Encoding.ASCII.GetString(raw);
        }

        const double LegacyMaxAgeHours = 72;

        // A pointer (LATEST or a history entry) that passed steps 2-4.
        sealed class Pointer
        {
            public string Key, Version, ManifestSha256;
            public long Sequence;
            public DateTime Created, Expires;
            public bool Envelope;
            public string Kind = "publish";
        }

        static readonly Regex HistoryName = new Regex("^[0-9]{12}\\.json$");

        public Verified Verify(string model, State state, DateTime now, long maxAgeSeconds, long minSequence)
        {
            if (!ModelRe.IsMatch(model)) throw new Refusal("pointer-invalid", "'" + model + "' is not a model name");
            string pkey = model + "/" + PointerName;
            byte[] latest = store.Read(pkey, EnvelopeLimit);
            if (latest == null)
                throw new Refusal("pointer-missing", pkey + " does not exist: " + (Challenger ? "no challenger published" : "nothing published"));
            Pointer ptr = ReadPointer(model, pkey, latest);

            // Step 5a: a LATEST that is not the pointer being served is checked against the
            // signed history beside it; a newer verified entry is the newest signed pointer
            // (LATEST was replaced by an older one, or a publish stopped before moving it).
            bool served = state != null && ptr.Sequence == state.Sequence && ptr.ManifestSha256 == state.ManifestSha256;
            if (!served)
            {
                Pointer newer = NewerHistory(model, ptr.Sequence);
                if (newer != null)
                {
                    Console.Error.WriteLine("ALERT " + pkey + " has sequence " + ptr.Sequence + " but the signed history holds sequence "
                        + newer.Sequence + " (" + newer.Version + "): going by the history entry");
                    ptr = newer;
                }
            }
            return VerifyPointer(model, ptr, state, now, maxAgeSeconds, minSequence);
        }

        // The verified history entry with the highest sequence above `sequence`, or null;
        // entries that do not verify, or carry another sequence than their name, are ignored.
        Pointer NewerHistory(string model, long sequence)
        {
            var found = new List<long>();
            foreach (string name in store.List(model + HistoryFolder))
            {
                long seq;
                if (HistoryName.IsMatch(name) && long.TryParse(name.Substring(0, 12), NumberStyles.None, CultureInfo.InvariantCulture, out seq) && seq > sequence)
                    found.Add(seq);
            }
            found.Sort();
            for (int i = found.Count - 1; i >= 0; i--)
            {
                string key = model + HistoryFolder + "/" + found[i].ToString("D12", CultureInfo.InvariantCulture) + ".json";
                try
                {
                    byte[] bytes = store.Read(key, EnvelopeLimit);
                    if (bytes == null) continue;
                    Pointer entry = ReadPointer(model, key, bytes);
                    if (entry.Sequence == found[i]) return entry;
                    Console.Error.WriteLine("NOTE ignoring " + key + ": it carries sequence " + entry.Sequence);
                }
                catch (Refusal r)
                {
                    Console.Error.WriteLine("NOTE ignoring " + key + ": " + r.Code + ": " + r.Message);
                }
                catch (Exception e) when (!(e is IOException || e is UnauthorizedAccessException))
                {
                    // an input no check foresaw is junk here too: one entry never refuses the model
                    Console.Error.WriteLine("NOTE ignoring " + key + ": verifier-error: " + e.GetType().Name + ": " + e.Message);
                }
            }
            return null;
        }

        // Steps 2-4 for the pointer bytes read from `key` (LATEST or a history entry).
        Pointer ReadPointer(string model, string key, byte[] latest)
        {
            string what = key;
            JsonObject outer = ParseObject(latest, what, "pointer-invalid");

            byte[] payload, signed;
            string sigHex;
            bool envelope = outer.Has("payloadType");
            if (Challenger && !envelope)
                throw new Refusal("pointer-invalid", what + ": a challenger pointer must be a signed envelope");
            if (envelope)
            {
                RequireCanonical(latest, outer, what, "pointer-invalid");
                if (outer.Pairs.Count != 3 || !outer.Has("payload") || !outer.Has("signatures"))
                    throw new Refusal("pointer-invalid", what + ": an envelope has exactly payload, payloadType, signatures");
                if (Str(outer, "payloadType", what, "pointer-invalid") != PayloadType)
                    throw new Refusal("pointer-invalid", what + ": payloadType is not " + PayloadType);
                string b64 = Str(outer, "payload", what, "pointer-invalid");
                try
                {
                    payload = Convert.FromBase64String(b64);
                }
                catch (FormatException)
                {
                    throw new Refusal("pointer-invalid", what + ": payload is not base64");
                }
                if (Convert.ToBase64String(payload) != b64)
                    throw new Refusal("pointer-invalid", what + ": payload is not strict base64 (padding, no line breaks)");
                if (payload.Length > PayloadLimit)
                    throw new Refusal("too-large", what + ": payload is larger than " + PayloadLimit + " bytes");
                var sigs = outer.Get("signatures") as List<object>;
                if (sigs == null || sigs.Count < 1 || sigs.Count > 4)
                    throw new Refusal("pointer-invalid", what + ": signatures must be a list of 1 to 4 entries");
                var byKey = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (object e in sigs)
                {
                    var entry = e as JsonObject;
                    if (entry == null || entry.Pairs.Count != 2 || !(entry.Get("keyid") is string) || !(entry.Get("sig") is string))
                        throw new Refusal("pointer-invalid", what + ": a signature entry must be {keyid, sig} strings");
                    byKey[(string)entry.Get("keyid")] = (string)entry.Get("sig");
                }
                JsonObject peek = ParseObject(payload, what + " payload", "pointer-invalid");
                string kid = Str(peek, "key_id", what + " payload", "pointer-invalid");
                if (!byKey.TryGetValue(kid, out sigHex))
                    throw new Refusal("signature-missing", what + ": no signature entry for the payload's key id '" + kid + "'");
                signed = Pae(PayloadType, payload);
            }
            else
            {
                byte[] sig = store.Read(key + ".sig", SigLimit);
                if (sig == null) throw new Refusal("signature-missing", what + ".sig does not exist");
                sigHex = SigText(sig, what + ".sig");
                payload = latest;
                signed = latest;
            }
            JsonObject p = ParseObject(payload, what, "pointer-invalid");
            CheckSignature(signed, p, sigHex, what, "pointer-invalid", model);

            // Step 4: the payload is trusted now; check its form.
            RequireCanonical(payload, p, what, "pointer-invalid");
            string schema = Str(p, "schema", what, "pointer-invalid");
            if (schema != (Challenger ? "edgeflow.challenger/1" : envelope ? "edgeflow.pointer/2" : "edgeflow.pointer/1"))
                throw new Refusal("pointer-invalid", what + ": schema '" + schema + "' is not expected here");
            if (Str(p, "model", what, "pointer-invalid") != model)
                throw new Refusal("pointer-invalid", what + " names model '" + Str(p, "model", what, "pointer-invalid") + "'");
            string version = Str(p, "version", what, "pointer-invalid");
            if (!VersionRe.IsMatch(version)) throw new Refusal("pointer-invalid", what + ": '" + version + "' is not a version name");
            long sequence = Int(p, "sequence", what, "pointer-invalid");
            if (sequence < 1 || sequence > MaxSequence) throw new Refusal("pointer-invalid", what + ": sequence out of range");
            string manifestSha = Str(p, "manifest_sha256", what, "pointer-invalid");
            if (!Sha.IsMatch(manifestSha)) throw new Refusal("pointer-invalid", what + ": manifest_sha256 is not a sha256 hex digest");
            DateTime created = Ts(p, "created_at", what, "pointer-invalid");
            // A legacy pointer has no expires field: it is bounded by age instead (docs/manifest.md),
            // so a genuinely signed pre-upgrade pointer cannot be served to a fresh bot later.
            DateTime expires = created.AddHours(LegacyMaxAgeHours);
            string kind = "publish";
            if (envelope)
            {
                expires = Ts(p, "expires", what, "pointer-invalid");
                if (expires <= created) throw new Refusal("pointer-invalid", what + ": expires is not after created_at");
                kind = Str(p, "kind", what, "pointer-invalid");
                if (Array.IndexOf(Challenger ? ChallengerKinds : Kinds, kind) < 0)
                    throw new Refusal("pointer-invalid", what + ": kind must be " + (Challenger ? "publish, heartbeat or withdraw" : "publish, rollback or heartbeat"));
                foreach (string f in new[] { "previous", "floor" })
                {
                    object v = p.Get(f);
                    if (!p.Has(f) || !(v is JsonNull || (v is string && VersionRe.IsMatch((string)v))))
                        throw new Refusal("pointer-invalid", what + ": field '" + f + "' must be a version name or null");
                }
            }

            return new Pointer
            {
                Key = key, Version = version, ManifestSha256 = manifestSha, Sequence = sequence,
                Created = created, Expires = expires, Envelope = envelope, Kind = kind,
            };
        }

        // Steps 5-9 for a pointer that passed steps 2-4.
        Verified VerifyPointer(string model, Pointer ptr, State state, DateTime now, long maxAgeSeconds, long minSequence)
        {
            string what = ptr.Key, version = ptr.Version, manifestSha = ptr.ManifestSha256;
            long sequence = ptr.Sequence;
            DateTime created = ptr.Created, expires = ptr.Expires;
            bool envelope = ptr.Envelope;

            // Step 5: never go back (nor below the bootstrap floor of a bot without state).
            if (sequence < minSequence)
                throw new Refusal("replay", what + " has sequence " + sequence + ", below the configured minimum " + minSequence + ": refusing a replayed pointer");
            bool already = false;
            if (state != null)
            {
                if (sequence < state.Sequence || (sequence == state.Sequence && manifestSha != state.ManifestSha256))
                    throw new Refusal("replay", what + " has sequence " + sequence + ", not above the last accepted " + state.Sequence + ": refusing a replayed pointer");
                already = sequence == state.Sequence;
            }

            // A signed withdrawal: no challenger stands. Its sequence counts (a bot records
            // it, so the withdrawn envelope put back is refused as a replay); nothing to load.
            if (ptr.Kind == "withdraw")
                return new Verified { Model = model, Version = version, Sequence = sequence, ManifestSha256 = manifestSha, Form = "envelope", AlreadyAccepted = already, Withdrawn = true };

            // Step 6: freshness.
            if (now > expires) throw new Refusal("expired", what + " expired at " + expires.ToString("o", CultureInfo.InvariantCulture));
            if (maxAgeSeconds > 0 && (now - created).TotalSeconds > maxAgeSeconds)
                throw new Refusal("expired", what + " was created more than " + maxAgeSeconds + " s ago");

            // Steps 7-8: the manifest the pointer names, signed, canonical, in its own folder.
            string prefix = model + "/" + version;
            string mwhat = prefix + "/manifest.json";
            byte[] manifest = store.Read(mwhat, ManifestLimit);
            if (manifest == null) throw new Refusal("file-missing", mwhat + " does not exist");
            byte[] msig = store.Read(mwhat + ".sig", SigLimit);
            if (msig == null) throw new Refusal("signature-missing", mwhat + ".sig does not exist");
            JsonObject m = ParseObject(manifest, mwhat, "manifest-invalid");
            CheckSignature(manifest, m, SigText(msig, mwhat + ".sig"), mwhat, "manifest-invalid", model);
            RequireCanonical(manifest, m, mwhat, "manifest-invalid");
            if (Str(m, "schema", mwhat, "manifest-invalid") != "edgeflow.manifest/1")
                throw new Refusal("manifest-invalid", mwhat + ": schema is not edgeflow.manifest/1");
            if (Str(m, "model", mwhat, "manifest-invalid") != model || Str(m, "version", mwhat, "manifest-invalid") != version)
                throw new Refusal("version-mismatch", mwhat + " describes " + m.Get("model") + "/" + m.Get("version") + ", not " + prefix);
            string digest = Sha256Hex(manifest);
            if (!ConstantTimeEquals(digest, manifestSha))
                throw new Refusal("pointer-mismatch", what + " names manifest sha256 " + manifestSha.Substring(0, 12) + "... but " + mwhat + " has " + digest.Substring(0, 12) + "...");

            // Step 9: every file, read once, size and sha256.
            var files = m.Get("files") as List<object>;
            if (files == null || files.Count == 0) throw new Refusal("manifest-invalid", mwhat + ": files must be a non-empty list");
            var result = new Verified { Model = model, Version = version, Sequence = sequence, ManifestSha256 = digest, Form = envelope ? "envelope" : "legacy", AlreadyAccepted = already };
            foreach (object fe in files)
            {
                var entry = fe as JsonObject;
                if (entry == null) throw new Refusal("manifest-invalid", mwhat + ": a files entry is not an object");
                string path = Str(entry, "path", mwhat, "manifest-invalid");
                string sha = Str(entry, "sha256", mwhat, "manifest-invalid");
                long size = Int(entry, "size", mwhat, "manifest-invalid");
                if (size < 0 || !Sha.IsMatch(sha)) throw new Refusal("manifest-invalid", mwhat + ": bad size or sha256 for " + path);
                CheckPath(path, mwhat);
                string key = prefix + "/" + path;
                byte[] blob;
                try
                {
                    blob = store.Read(key, size);
                }
                catch (Refusal r)
                {
                    if (r.Code == "too-large") throw new Refusal("size-mismatch", key + " is larger than the manifest's " + size + " bytes (padded)");
                    throw;
                }
                if (blob == null) throw new Refusal("file-missing", key + " is listed in the manifest but missing");
                if (blob.Length != size) throw new Refusal("size-mismatch", key + " is " + blob.Length + " bytes, the manifest says " + size + " (truncated)");
                if (!ConstantTimeEquals(Sha256Hex(blob), sha)) throw new Refusal("hash-mismatch", key + ": sha256 differs from the manifest (modified bytes)");
                result.Files[path] = blob;
            }
            return result;
        }

        static void CheckPath(string path, string what)
        {
            if (path.Length == 0 || path.StartsWith("/") || path.IndexOf('\\') >= 0 || path.IndexOf(':') >= 0 || path == "manifest.json" || path == "manifest.json.sig")
                throw new Refusal("path-escape", what + ": file path '" + path + "' is not a plain relative path");
            foreach (string seg in path.Split('/'))
                if (seg == "." || seg == ".." || !Segment.IsMatch(seg))
                    throw new Refusal("path-escape", what + ": file path '" + path + "' has a forbidden segment '" + seg + "'");
        }
    }

    // ------------------------------------------------------------------ command line
    public static class Program
    {
        static int Usage(string why)
        {
            Console.Error.WriteLine("usage error: " + why);
            Console.Error.WriteLine("usage: Verifier.exe --store DIR --model NAME --key ID:HEX [--key ...] [--revoked ID] [--scope ID:MODEL,...] [--state FILE] [--now ISO8601] [--max-age-seconds N] [--min-sequence N] [--out DIR] [--pointer LATEST|CHALLENGER]");
            return 64;
        }

        static State ReadState(string path, string model)
        {
            if (!File.Exists(path)) return null;
            JsonObject o;
            try
            {
                o = Json.Parse(File.ReadAllBytes(path)) as JsonObject;
            }
            catch (JsonError e)
            {
                throw new Refusal("state-invalid", path + " is not valid JSON: " + e.Message);
            }
            if (o == null || !(o.Get("model") is string) || (string)o.Get("model") != model || !(o.Get("sequence") is JsonNumber) || !(o.Get("manifest_sha256") is string))
                throw new Refusal("state-invalid", path + " is not a consumer state for model '" + model + "'");
            return new State
            {
                Model = model,
                Version = o.Get("version") as string,
                Sequence = long.Parse(((JsonNumber)o.Get("sequence")).Raw, CultureInfo.InvariantCulture),
                ManifestSha256 = (string)o.Get("manifest_sha256"),
            };
        }

        // Canonical JSON, temporary file, fsync, rename: a crash never leaves a torn state.
        static void WriteState(string path, Verified v, DateTime now)
        {
            var o = new JsonObject();
            Action<string, object> add = (k, val) => { o.Map[k] = val; o.Pairs.Add(new KeyValuePair<string, object>(k, val)); };
            add("model", v.Model);
            add("version", v.Version);
            add("sequence", new JsonNumber(v.Sequence.ToString(CultureInfo.InvariantCulture), true));
            add("manifest_sha256", v.ManifestSha256);
            add("accepted_at", now.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));
            byte[] bytes = Json.Canonical(o);
            string dir = Path.GetDirectoryName(Path.GetFullPath(path));
            Directory.CreateDirectory(dir);
            string tmp = path + ".tmp";
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
            {
                fs.Write(bytes, 0, bytes.Length);
                fs.Flush(true);
            }
            if (File.Exists(path)) File.Replace(tmp, path, null);
            else File.Move(tmp, path);
        }

        public static int Main(string[] args)
        {
            string storeDir = null, model = null, statePath = null, outDir = null, pointerName = "LATEST";
            var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            var revoked = new HashSet<string>(StringComparer.Ordinal);
            var scopes = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            DateTime now = DateTime.UtcNow;
            long maxAge = 0;
            long minSequence = 0;
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                if (i + 1 >= args.Length) return Usage(a + " needs a value");
                string v = args[++i];
                switch (a)
                {
                    case "--store": storeDir = v; break;
                    case "--model": model = v; break;
                    case "--state": statePath = v; break;
                    case "--out": outDir = v; break;
                    case "--pointer":
                        if (v != "LATEST" && v != "CHALLENGER") return Usage("--pointer must be LATEST or CHALLENGER");
                        pointerName = v;
                        break;
                    case "--revoked": revoked.Add(v); break;
                    case "--scope":
                        int sep = v.IndexOf(':');
                        if (sep <= 0) return Usage("--scope must be ID:model[,model...]");
                        scopes[v.Substring(0, sep)] = new HashSet<string>(v.Substring(sep + 1).Split(','), StringComparer.Ordinal);
                        break;
                    case "--min-sequence":
                        if (!long.TryParse(v, out minSequence) || minSequence < 0) return Usage("--min-sequence must be a non-negative integer");
                        break;
                    case "--max-age-seconds":
                        if (!long.TryParse(v, out maxAge) || maxAge < 0) return Usage("--max-age-seconds must be a non-negative integer");
                        break;
                    case "--now":
                        if (!DateTime.TryParse(v, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out now))
                            return Usage("--now is not a timestamp");
                        break;
                    case "--key":
                        int colon = v.IndexOf(':');
                        if (colon <= 0) return Usage("--key must be ID:HEX");
                        string hex = v.Substring(colon + 1);
                        if (hex.Length % 2 != 0 || !Regex.IsMatch(hex, "^[0-9a-fA-F]*$")) return Usage("key " + v.Substring(0, colon) + " is not hex");
                        var key = new byte[hex.Length / 2];
                        for (int j = 0; j < key.Length; j++) key[j] = Convert.ToByte(hex.Substring(2 * j, 2), 16);
                        if (key.Length < 32) return Usage("key " + v.Substring(0, colon) + " is shorter than 32 bytes");
                        keys[v.Substring(0, colon)] = key;
                        break;
                    default:
                        return Usage("unknown option " + a);
                }
            }
            if (storeDir == null || model == null || keys.Count == 0) return Usage("--store, --model and at least one --key are required");
            if (!Directory.Exists(storeDir)) return Usage("store folder " + storeDir + " does not exist");
            try
            {
                State state = statePath != null ? ReadState(statePath, model) : null;
                var verifier = new ModelVerifier(new FileStoreReader(storeDir), keys, revoked, scopes);
                verifier.PointerName = pointerName;
                Verified v = verifier.Verify(model, state, now, maxAge, minSequence);
                if (statePath != null && !v.AlreadyAccepted) WriteState(statePath, v, now);
                if (v.Withdrawn)
                {
                    Console.WriteLine("WITHDRAWN model=" + v.Model + " version=" + v.Version + " sequence=" + v.Sequence
                        + (v.AlreadyAccepted ? " (already accepted)" : ""));
                    return 3;
                }
                if (outDir != null)
                {
                    foreach (var f in v.Files)
                    {
                        string target = Path.Combine(outDir, f.Key.Replace('/', Path.DirectorySeparatorChar));
                        Directory.CreateDirectory(Path.GetDirectoryName(target));
                        File.WriteAllBytes(target, f.Value);
                    }
                }
                Console.WriteLine("VERIFIED model=" + v.Model + " version=" + v.Version + " sequence=" + v.Sequence
                    + " manifest_sha256=" + v.ManifestSha256 + " pointer=" + v.Form + " files=" + v.Files.Count
                    + (v.AlreadyAccepted ? " (already accepted)" : ""));
                return 0;
            }
            catch (Refusal r)
            {
                Console.WriteLine("REFUSED " + r.Code + ": " + r.Message);
                return 2;
            }
            catch (IOException e)
            {
                Console.WriteLine("REFUSED store-error: " + e.Message);
                return 2;
            }
            catch (UnauthorizedAccessException e)
            {
                Console.WriteLine("REFUSED store-error: " + e.Message);
                return 2;
            }
            catch (Exception e)  // nothing else escapes: an unforeseen input is still a refusal
            {
                Console.WriteLine("REFUSED verifier-error: " + e.GetType().Name + ": " + e.Message);
                return 2;
            }
        }
    }
}
