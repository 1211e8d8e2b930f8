package io.edgeseal;

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;
import java.util.Map;

/**
 * Test driver for the JVM reader (tests/jvm/test_jvm_reader.py compiles and runs it). One JSON object per
 * output line, so the Python side can compare with vectors.json and the Python runtime.
 *
 * <pre>
 * VectorDriver vectors CASES.json DIR   open every file of a vectors.json-shaped description with each key
 * VectorDriver kdf REQUESTS.json        scrypt / hkdf / blake2b / blake3 / x25519-public / fingerprint outputs, for cross-checks
 * VectorDriver json TEXT...             "ok" or "error" for each text given to the strict JSON parser
 * VectorDriver pem DEVICE.pem PUBLISHER.pub   raw hex of an X25519 private and an Ed25519 public key PEM
 * VectorDriver flips FILE KIND KEY TRUSTED ALLOW_UNSIGNED NOW
 *                                       flip the low bit of every byte in turn and report each outcome
 * </pre>
 */
public final class VectorDriver {
    private VectorDriver() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        switch (args[0]) {
            case "vectors":
                vectors(args[1], args[2], out);
                break;
            case "kdf":
                kdf(args[1], out);
                break;
            case "json":
                for (int i = 1; i < args.length; i++) {
                    try {
                        Json.parse(args[i].getBytes(StandardCharsets.UTF_8));
                        out.println("ok");
                    } catch (Json.ParseException e) {
                        out.println("error");
                    }
                }
                break;
            case "pem":
                out.println(Crypto.toHex(Keys.x25519PrivateFromPem(new String(read(args[1]), StandardCharsets.US_ASCII))));
                out.println(Crypto.toHex(Keys.ed25519PublicFromPem(new String(read(args[2]), StandardCharsets.US_ASCII))));
                break;
            case "flips":
                flips(args, out);
                break;
            default:
                throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    @SuppressWarnings("unchecked")
    private static void vectors(String casesPath, String dir, PrintStream out) throws Exception {
        Map<String, Object> spec = (Map<String, Object>) Json.parse(read(casesPath));
        Map<String, Object> keys = (Map<String, Object>) spec.get("keys");
        long now = (Long) keys.get("now");
        for (Object item : (List<Object>) spec.get("vectors")) {
            Map<String, Object> v = (Map<String, Object>) item;
            String file = (String) v.get("file");
            byte[] data = read(dir + "/" + file);
            for (Object kind : (List<Object>) v.get("open_with")) {
                OpenOptions.Builder b = OpenOptions.builder().now(now).allowUnsigned((Boolean) v.get("allow_unsigned"));
                for (Object t : (List<Object>) v.get("trusted")) {
                    b.trust(Crypto.hex((String) keys.get((String) t)));
                }
                Object floor = v.get("min_version");
                if (floor instanceof Long) {
                    b.minVersion((Long) floor);
                }
                if (v.get("scrypt_budget") instanceof Long) {
                    b.scryptBudget((Long) v.get("scrypt_budget"));
                }
                if (v.get("max_plaintext") instanceof Long) {
                    b.maxPlaintextBytes((Long) v.get("max_plaintext"));
                }
                StringBuilder line = new StringBuilder("{\"file\":\"").append(file).append("\",\"key\":\"")
                        .append(kind).append("\",");
                long started = System.nanoTime();
                try (DecryptionKey key = key((String) kind, keys);
                     Plaintext plain = Edgeseal.open(data, key, b.build())) {
                    ByteBuffer buf = plain.buffer();
                    MessageDigest md = MessageDigest.getInstance("SHA-256");
                    md.update(buf.duplicate());
                    line.append("\"result\":\"ok\",\"sha256\":\"").append(Crypto.toHex(md.digest()))
                            .append("\",\"size\":").append(plain.size())
                            .append(",\"direct\":").append(buf.isDirect())
                            .append(",\"name\":\"").append(plain.manifest().name).append('"')
                            .append(",\"publisher\":").append(plain.publisher() == null ? "null" : "\"" + plain.publisher() + "\"");
                } catch (EdgesealException e) {
                    line.append("\"result\":\"error\",\"error\":\"").append(e.pythonName())
                            .append("\",\"message\":\"").append(e.getMessage().replace("\\", "\\\\").replace("\"", "\\\""))
                            .append('"');
                }
                line.append(",\"ms\":").append((System.nanoTime() - started) / 1_000_000.0).append('}');
                out.println(line);
            }
        }
    }

    /** args: flips FILE KIND KEY(hex, or the passphrase) TRUSTED(hex or "-") ALLOW_UNSIGNED NOW. */
    private static void flips(String[] args, PrintStream out) throws Exception {
        byte[] data = read(args[1]);
        OpenOptions.Builder b = OpenOptions.builder().allowUnsigned(Boolean.parseBoolean(args[5]))
                .now(Long.parseLong(args[6]));
        if (!args[4].equals("-")) {
            b.trust(Crypto.hex(args[4]));
        }
        OpenOptions options = b.build();
        for (int i = 0; i < data.length; i++) {
            data[i] ^= 1;
            try (DecryptionKey key = args[2].equals("passphrase") ? DecryptionKey.passphrase(args[3].toCharArray())
                    : args[2].equals("raw") ? DecryptionKey.raw(Crypto.hex(args[3])) : DecryptionKey.x25519(Crypto.hex(args[3]));
                 Plaintext plain = Edgeseal.open(data, key, options)) {
                MessageDigest md = MessageDigest.getInstance("SHA-256");
                md.update(plain.buffer());
                out.println("ok:" + Crypto.toHex(md.digest()));
            } catch (EdgesealException e) {
                out.println(e.pythonName());
            }
            data[i] ^= 1;
        }
    }

    private static DecryptionKey key(String kind, Map<String, Object> keys) {
        switch (kind) {
            case "x25519":
                return DecryptionKey.x25519(Crypto.hex((String) keys.get("x25519_private")));
            case "raw":
                return DecryptionKey.raw(Crypto.hex((String) keys.get("raw")));
            case "passphrase":
                return DecryptionKey.passphrase(((String) keys.get("passphrase")).toCharArray());
            default:
                throw new IllegalArgumentException("unknown key kind " + kind);
        }
    }

    @SuppressWarnings("unchecked")
    private static void kdf(String requestsPath, PrintStream out) throws Exception {
        for (Object item : (List<Object>) Json.parse(read(requestsPath))) {
            Map<String, Object> r = (Map<String, Object>) item;
            String op = (String) r.get("op");
            byte[] result;
            switch (op) {
                case "scrypt":
                    result = Scrypt.derive(Crypto.hex((String) r.get("password")), Crypto.hex((String) r.get("salt")),
                            ((Long) r.get("log2n")).intValue(), ((Long) r.get("r")).intValue(),
                            ((Long) r.get("p")).intValue(), ((Long) r.get("length")).intValue());
                    break;
                case "hkdf":
                    result = Crypto.hkdf(Crypto.hex((String) r.get("ikm")), Crypto.hex((String) r.get("salt")),
                            Crypto.hex((String) r.get("info")), ((Long) r.get("length")).intValue());
                    break;
                case "blake2b":
                    byte[] message = Crypto.hex((String) r.get("data"));
                    result = Blake2b.digest(((Long) r.get("length")).intValue(), message, 0, message.length);
                    break;
                case "blake3":
                    byte[] input = Crypto.hex((String) r.get("data"));
                    result = Blake3.digest(input, 0, input.length);
                    break;
                case "x25519_public":
                    result = Crypto.x25519Public(Crypto.hex((String) r.get("private")));
                    break;
                case "fingerprint":
                    out.println("{\"op\":\"fingerprint\",\"out\":\""
                            + SealedPackage.fingerprint(Crypto.hex((String) r.get("public"))) + "\"}");
                    continue;
                default:
                    throw new IllegalArgumentException("unknown op " + op);
            }
            out.println("{\"op\":\"" + op + "\",\"out\":\"" + Crypto.toHex(result) + "\"}");
        }
    }

    private static byte[] read(String path) throws IOException {
        try (InputStream in = new FileInputStream(path)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }
}
