package io.edgeseal;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import java.util.Locale;
import java.util.TimeZone;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A parsed sealed package, format v1 or v2 (docs/format.md; v2 in §10). {@link #parse} checks structure only
 * (§7 steps 1-3); nothing is authenticated until {@link #authenticate}. The explicit layer under
 * {@link Edgeseal#open}: parse → authenticate → checkPolicy → contentKey → decrypt.
 */
public final class SealedPackage {
    static final byte[] MAGIC = {(byte) 0x89, 'E', 'S', 'E', 'A', 'L', '\r', '\n'};
    static final int HEADER = 16;
    static final int MAX_MANIFEST = 4 << 20;
    static final int MAX_SLOTS = 1024;
    static final int SIGNATURE_BLOCK = 1 << 20;
    static final int TYPE_X25519 = 1;
    static final int TYPE_PASSPHRASE = 2;
    static final int TYPE_RAW = 3;
    private static final int MAX_LOG2_N = 22;
    private static final int MAX_R = 32;
    private static final int MAX_P = 16;
    private static final long MAX_SCRYPT_MEMORY = 1L << 30;

    /** One key slot (§4). The body is the slot's bytes after type and length. */
    static final class Slot {
        final int type;
        final byte[] body;

        Slot(int type, byte[] body) {
            this.type = type;
            this.body = body;
        }

        byte[] fingerprint() {
            return Arrays.copyOfRange(body, 0, 16);
        }

        String describe() {
            switch (type) {
                case TYPE_X25519:
                    return "x25519 device key " + Crypto.toHex(fingerprint());
                case TYPE_RAW:
                    return "raw 256-bit key " + Crypto.toHex(fingerprint());
                case TYPE_PASSPHRASE:
                    return "passphrase (scrypt N=2^" + (body[16] & 0xff) + ", r=" + (body[17] & 0xff)
                            + ", p=" + (body[18] & 0xff) + ")";
                default:
                    return "unknown slot type " + type + " (ignored by this reader)";
            }
        }
    }

    private final byte[] data;
    private final int version;
    private final int tableOffset; // v2: the digest table, 32 bytes per chunk (§10.1); -1 in v1
    private final Manifest manifest;
    private final byte[] aad; // H = SHA-256(header || manifest)
    private final List<Slot> slots;
    private final int ciphertextOffset;
    private final int ciphertextLength;
    private final byte[] publisherKey; // null when unsigned
    private final byte[] signature;
    private final int signedLength;

    private SealedPackage(byte[] data, int version, int tableOffset, Manifest manifest, byte[] aad, List<Slot> slots,
                          int ctOffset, int ctLength, byte[] publisherKey, byte[] signature, int signedLength) {
        this.data = data;
        this.version = version;
        this.tableOffset = tableOffset;
        this.manifest = manifest;
        this.aad = aad;
        this.slots = slots;
        this.ciphertextOffset = ctOffset;
        this.ciphertextLength = ctLength;
        this.publisherKey = publisherKey;
        this.signature = signature;
        this.signedLength = signedLength;
    }

    /** §7 steps 1-3: header, manifest, slots, payload length, signature field, end of file. Keeps {@code data}. */
    public static SealedPackage parse(byte[] data) throws InvalidPackageException {
        Reader in = new Reader(data);
        byte[] magic = in.take(8);
        int version = in.u16();
        int flags = in.u16();
        long manifestLength = in.u32();
        if (!Arrays.equals(magic, MAGIC) || (version != 1 && version != 2) || flags != 0
                || manifestLength > MAX_MANIFEST) {
            throw new InvalidPackageException();
        }
        Manifest manifest = Manifest.parse(in.take((int) manifestLength));
        byte[] aad = Crypto.sha256(Arrays.copyOfRange(data, 0, HEADER + (int) manifestLength));

        int count = in.u16();
        if (count < 1 || count > MAX_SLOTS) {
            throw new InvalidPackageException();
        }
        List<Slot> slots = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int type = in.u8();
            byte[] body = in.take(in.u16());
            int expected = type == TYPE_X25519 ? 96 : type == TYPE_PASSPHRASE ? 67 : type == TYPE_RAW ? 80 : body.length;
            if (body.length != expected) {
                throw new InvalidPackageException();
            }
            slots.add(new Slot(type, body));
        }
        Manifest.Payload p = manifest.payload;
        if (version == 2) {
            return parseV2Tail(data, in, manifest, aad, Collections.unmodifiableList(slots));
        }
        long ctLength = in.u64();
        if (ctLength < 0 || ctLength != p.size + 16 * p.chunkCount() || ctLength > in.remaining()) {
            throw new InvalidPackageException();
        }
        int ctOffset = in.pos;
        in.skip((int) ctLength);
        SignatureBlock signature = SignatureBlock.read(in);
        if (in.remaining() != 0) {
            throw new InvalidPackageException();
        }
        return new SealedPackage(data, 1, -1, manifest, aad, Collections.unmodifiableList(slots), ctOffset,
                (int) ctLength, signature.publisher, signature.sig, signature.signed);
    }

    /** sig_alg [publisher_key signature]: the same block in v1 (§5) and v2 (§10.1); null fields when unsigned. */
    private static final class SignatureBlock {
        byte[] publisher;
        byte[] sig;
        int signed; // bytes covered by the signature (everything before the 64 signature bytes)

        static SignatureBlock read(Reader in) throws InvalidPackageException {
            SignatureBlock b = new SignatureBlock();
            int alg = in.u8();
            if (alg == 1) {
                b.publisher = in.take(32);
                b.signed = in.pos;
                b.sig = in.take(64);
            } else if (alg != 0) {
                throw new InvalidPackageException();
            }
            return b;
        }
    }

    /** §10.1 after the slots: digest table, sig_alg [publisher_key signature], ct_len, ciphertext, end of file. */
    private static SealedPackage parseV2Tail(byte[] data, Reader in, Manifest manifest, byte[] aad, List<Slot> slots)
            throws InvalidPackageException {
        Manifest.Payload p = manifest.payload;
        if (!"blake3".equals(p.chunkDigest) && !"sha-256".equals(p.chunkDigest)
                && !"blake2b-256".equals(p.chunkDigest)) {
            throw new InvalidPackageException();
        }
        long tableLength = 32 * p.chunkCount();
        if (tableLength > in.remaining()) {
            throw new InvalidPackageException();
        }
        int tableOffset = in.pos;
        in.skip((int) tableLength);
        SignatureBlock signature = SignatureBlock.read(in);
        long ctLength = in.u64();
        if (ctLength < 0 || ctLength != p.size + 16 * p.chunkCount() || ctLength != in.remaining()) {
            throw new InvalidPackageException();
        }
        return new SealedPackage(data, 2, tableOffset, manifest, aad, slots, in.pos, (int) ctLength,
                signature.publisher, signature.sig, signature.signed);
    }

    /** The cleartext manifest (not yet authenticated before {@link #authenticate}). */
    public Manifest manifest() {
        return manifest;
    }

    public boolean isSigned() {
        return publisherKey != null;
    }

    /** Fingerprint of the signing key as written in the file (not verified), or null when unsigned. */
    public String publisherFingerprint() {
        return publisherKey == null ? null : fingerprint(publisherKey);
    }

    /** Human-readable description of each key slot. */
    public List<String> slotDescriptions() {
        List<String> out = new ArrayList<>();
        for (Slot s : slots) {
            out.add(s.describe());
        }
        return out;
    }

    /**
     * §5: decide trust and verify the Ed25519 signature, before anything is decrypted.
     *
     * @return the verified publisher fingerprint, or null for an allowed unsigned package
     */
    public String authenticate(List<byte[]> trusted, boolean allowUnsigned) throws EdgesealException {
        if (publisherKey == null) {
            if (allowUnsigned) {
                return null;
            }
            throw new UnsignedPackageException();
        }
        boolean known = false;
        for (byte[] t : trusted) {
            known |= Crypto.equal(t, publisherKey);
        }
        if (!known) {
            if (trusted.isEmpty() && allowUnsigned) {
                verifySignature(); // no trust anchors and unsigned allowed: integrity only, claim nothing
                return null;
            }
            if (trusted.isEmpty()) {
                throw new UntrustedPublisherException("sealed package is signed by publisher "
                        + publisherFingerprint() + ", but no trusted publisher keys were given; "
                        + "trust that publisher's public key with OpenOptions.builder().trust(key)");
            }
            throw new UntrustedPublisherException("sealed package is signed by publisher " + publisherFingerprint()
                    + ", which is not among the " + trusted.size() + " trusted publisher key(s); trust its "
                    + "public key if you trust it, otherwise do not load this file");
        }
        verifySignature();
        return publisherFingerprint();
    }

    private void verifySignature() throws EdgesealException {
        if (!Crypto.ed25519Verify(publisherKey, signedMessage(), signature)) {
            throw new InvalidPackageException();
        }
    }

    /**
     * v1: "edgeseal/v1/signature" || 0x00 || D, D over the per-MiB block hashes of the signed bytes (§5).
     * v2: "edgeseal/v2/signature" || 0x00 || SHA-256(signed bytes), which end with the digest table (§10.3).
     */
    byte[] signedMessage() {
        if (version == 2) {
            MessageDigest md = Crypto.digest();
            md.update(data, 0, signedLength);
            return Crypto.concat(Crypto.ascii("edgeseal/v2/signature"), new byte[1], md.digest());
        }
        MessageDigest outer = Crypto.digest();
        outer.update(Crypto.ascii("edgeseal/v1/blocks"));
        outer.update(ByteBuffer.allocate(8).putLong(signedLength).array());
        MessageDigest block = Crypto.digest();
        int at = 0;
        do {
            int n = Math.min(SIGNATURE_BLOCK, signedLength - at);
            block.update(data, at, n);
            outer.update(block.digest());
            at += n;
        } while (at < signedLength);
        return Crypto.concat(Crypto.ascii("edgeseal/v1/signature"), new byte[1], outer.digest());
    }

    /** §6: rollback floor and expiry. Call after {@link #authenticate} so the values are authentic. */
    public void checkPolicy(Long minVersion, long nowSeconds) throws PolicyException {
        Manifest m = manifest;
        if (minVersion != null && m.modelVersion < minVersion) {
            throw new RollbackRejectedException("model '" + m.name + "' version " + m.modelVersion
                    + " is below the minimum version " + minVersion + " this app accepts (rollback protection); "
                    + "install a newer package");
        }
        if (m.expiresAt != null && nowSeconds >= m.expiresAt) {
            SimpleDateFormat f = new SimpleDateFormat("yyyy-MM-dd HH:mm:ss 'UTC'", Locale.ROOT);
            f.setTimeZone(TimeZone.getTimeZone("UTC"));
            throw new PackageExpiredException("model '" + m.name + "' expired at " + f.format(new Date(m.expiresAt * 1000))
                    + "; ask the publisher for a fresh package");
        }
    }

    /** Default scrypt work (N * r * p summed over the passphrase slots tried) one open may spend (format.md §9). */
    public static final long DEFAULT_SCRYPT_BUDGET = 1L << 24;

    /** §9: refuse, before any slot is unwrapped, a payload larger than {@code maxPlaintextBytes}. */
    public void checkSize(long maxPlaintextBytes) throws UnsupportedException {
        Manifest.Payload p = manifest.payload;
        if (p.originalSize > maxPlaintextBytes || p.size > maxPlaintextBytes) {
            throw new UnsupportedException("the model is " + Math.max(p.size, p.originalSize) + " bytes, above the "
                    + maxPlaintextBytes + "-byte limit of one ByteBuffer / OpenOptions.maxPlaintextBytes");
        }
    }

    /** {@link #contentKey(DecryptionKey, long)} with the default scrypt budget. */
    public byte[] contentKey(DecryptionKey key) throws EdgesealException {
        return contentKey(key, DEFAULT_SCRYPT_BUDGET);
    }

    /**
     * §4: select the slots addressed to {@code key} by fingerprint and unwrap the content key K, trying matching
     * slots in file order. Passphrase slots outside the scrypt bounds are skipped without running scrypt; the
     * others may spend at most {@code scryptBudget} (N * r * p, summed), checked before each is tried.
     */
    public byte[] contentKey(DecryptionKey key, long scryptBudget) throws EdgesealException {
        byte[] secret = key.secret();
        List<Slot> matching = new ArrayList<>();
        String what;
        byte[] devicePublic = null;
        if (key.type == DecryptionKey.Type.X25519) {
            devicePublic = Crypto.x25519Public(secret);
            byte[] fp = Arrays.copyOf(Crypto.sha256(Crypto.ascii("edgeseal/v1/fingerprint/x25519"), devicePublic), 16);
            what = "device key " + Crypto.toHex(fp);
            for (Slot s : slots) {
                if (s.type == TYPE_X25519 && Crypto.equal(s.fingerprint(), fp)) {
                    matching.add(s);
                }
            }
        } else if (key.type == DecryptionKey.Type.RAW) {
            byte[] fp = Arrays.copyOf(Crypto.sha256(Crypto.ascii("edgeseal/v1/fingerprint/raw"), secret), 16);
            what = "raw key " + Crypto.toHex(fp);
            for (Slot s : slots) {
                if (s.type == TYPE_RAW && Crypto.equal(s.fingerprint(), fp)) {
                    matching.add(s);
                }
            }
        } else {
            what = "a passphrase";
            for (Slot s : slots) {
                if (s.type == TYPE_PASSPHRASE) {
                    matching.add(s);
                }
            }
        }
        if (matching.isEmpty()) {
            throw new NoMatchingKeyException("no key slot of this package is for " + what + "; it is sealed for: "
                    + joined(slotDescriptions()));
        }
        long spent = 0;
        for (int i = 0; i < matching.size(); i++) {
            Slot slot = matching.get(i);
            if (slot.type == TYPE_PASSPHRASE) {
                long work = scryptWork(slot.body);
                if (work < 0) {
                    continue; // outside the scrypt bounds: never unwraps
                }
                if (spent + work > scryptBudget) {
                    throw new UnsupportedException("trying passphrase slot " + (i + 1) + " of " + matching.size()
                            + " would take the scrypt work of this open to " + (spent + work) + " (N*r*p), above the "
                            + "budget of " + scryptBudget + "; raise OpenOptions.scryptBudget if you trust the package");
                }
                spent += work;
            }
            try {
                return unwrap(slot, secret, devicePublic);
            } catch (InvalidPackageException e) {
                // try the next matching slot; if none unwraps, the package is invalid
            }
        }
        throw new InvalidPackageException();
    }

    /** N * r * p of a passphrase slot body within §4's bounds, or -1 when outside them. */
    private static long scryptWork(byte[] b) {
        int log2n = b[16] & 0xff;
        int r = b[17] & 0xff;
        int p = b[18] & 0xff;
        if (log2n < 1 || log2n > MAX_LOG2_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P
                || 128L * r * (1L << log2n) > MAX_SCRYPT_MEMORY) {
            return -1;
        }
        return (1L << log2n) * r * p;
    }

    private byte[] unwrap(Slot slot, byte[] secret, byte[] devicePublic) throws EdgesealException {
        byte[] b = slot.body;
        byte[] wrapKey;
        byte[] wrapped;
        if (slot.type == TYPE_X25519) {
            byte[] ephemeral = Arrays.copyOfRange(b, 16, 48);
            byte[] shared = Crypto.x25519(secret, ephemeral);
            wrapKey = Crypto.hkdf(shared, Crypto.concat(ephemeral, devicePublic), Crypto.ascii("edgeseal/v1/slot/x25519"), 32);
            Arrays.fill(shared, (byte) 0);
            wrapped = Arrays.copyOfRange(b, 48, 96);
        } else if (slot.type == TYPE_RAW) {
            wrapKey = Crypto.hkdf(secret, Arrays.copyOfRange(b, 16, 32), Crypto.ascii("edgeseal/v1/slot/raw"), 32);
            wrapped = Arrays.copyOfRange(b, 32, 80);
        } else {
            int log2n = b[16] & 0xff;
            int r = b[17] & 0xff;
            int p = b[18] & 0xff;
            if (log2n < 1 || log2n > MAX_LOG2_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P
                    || 128L * r * (1L << log2n) > MAX_SCRYPT_MEMORY) {
                throw new InvalidPackageException();
            }
            if (128L * r * (1L << log2n) > Runtime.getRuntime().maxMemory() / 2) {
                throw new UnsupportedException("the passphrase slot needs " + (128L * r * (1L << log2n) >> 20)
                        + " MiB for scrypt, more than half this JVM's heap; raise -Xmx or use a device key");
            }
            wrapKey = Scrypt.derive(secret, Arrays.copyOfRange(b, 0, 16), log2n, r, p, 32);
            wrapped = Arrays.copyOfRange(b, 19, 67);
        }
        try {
            return Crypto.open("aes-256-gcm", wrapKey, new byte[12], aad, wrapped);
        } finally {
            Arrays.fill(wrapKey, (byte) 0);
        }
    }

    /**
     * §3 and the codec: decrypt every chunk (any tag failure rejects the whole package) into a direct
     * buffer, and inflate a zlib payload bounded to {@code original_size}. Wipes {@code contentKey}.
     */
    public Plaintext decrypt(byte[] contentKey, String publisher, long maxPlaintextBytes) throws EdgesealException {
        Manifest.Payload p = manifest.payload;
        checkSize(maxPlaintextBytes);
        ByteBuffer stored = ByteBuffer.allocateDirect((int) p.size);
        try {
            decryptChunks(contentKey, p, stored);
            if (p.codec.equals("none")) {
                ((Buffer) stored).clear();
                return new Plaintext(stored, manifest, publisher);
            }
            ByteBuffer out = ByteBuffer.allocateDirect((int) p.originalSize);
            try {
                inflate(stored, out, p.originalSize);
            } catch (EdgesealException | RuntimeException e) {
                Plaintext.wipe(out);
                throw e;
            }
            ((Buffer) out).clear();
            Plaintext.wipe(stored);
            return new Plaintext(out, manifest, publisher);
        } catch (EdgesealException | RuntimeException e) {
            Plaintext.wipe(stored);
            throw e;
        } finally {
            Arrays.fill(contentKey, (byte) 0);
        }
    }

    // Buffer methods are called through java.nio.Buffer: ByteBuffer's covariant overrides (Java 9+) are
    // missing on older Android, where calling them through ByteBuffer fails with NoSuchMethodError.
    private void decryptChunks(byte[] key, Manifest.Payload p, ByteBuffer out) throws EdgesealException {
        long n = p.chunkCount();
        ByteBuffer ct = ByteBuffer.wrap(data, ciphertextOffset, ciphertextLength).slice();
        for (long i = 0; i < n; i++) {
            int plainLength = (int) Math.min(p.chunkSize, p.size - i * p.chunkSize);
            int start = (int) (i * (p.chunkSize + 16L));
            ByteBuffer chunk = ct.duplicate();
            ((Buffer) chunk).limit(start + plainLength + 16).position(start);
            byte[] nonce = ByteBuffer.allocate(12).put(p.noncePrefix).putInt((int) i).put((byte) (i == n - 1 ? 1 : 0)).array();
            ByteBuffer dst = out.duplicate();
            ((Buffer) dst).limit((int) (i * p.chunkSize) + plainLength).position((int) (i * p.chunkSize));
            if (version == 2 && !chunkDigestMatches(p.chunkDigest, ciphertextOffset + start, plainLength + 16, i)) {
                throw new InvalidPackageException(); // §10.4: checked before the chunk is decrypted
            }
            Crypto.open(p.cipher, key, nonce, aad, chunk, dst);
            if (dst.hasRemaining()) {
                throw new InvalidPackageException();
            }
        }
    }

    private boolean chunkDigestMatches(String digest, int offset, int length, long index) {
        byte[] actual;
        if (digest.equals("sha-256")) {
            MessageDigest md = Crypto.digest();
            md.update(data, offset, length);
            actual = md.digest();
        } else if (digest.equals("blake3")) {
            actual = Blake3.digest(data, offset, length);
        } else {
            actual = Blake2b.digest(32, data, offset, length);
        }
        byte[] expected = Arrays.copyOfRange(data, tableOffset + (int) (32 * index), tableOffset + (int) (32 * index) + 32);
        return MessageDigest.isEqual(actual, expected);
    }

    /** Inflate the whole zlib stream (RFC 1950) into {@code out}: it must end exactly at the end of the input
     *  and yield exactly {@code expected} bytes; never writes more than {@code expected}. */
    private static void inflate(ByteBuffer stored, ByteBuffer out, long expected) throws InvalidPackageException {
        Inflater inflater = new Inflater();
        byte[] in = new byte[Math.min(1 << 16, Math.max(1, stored.capacity()))];
        byte[] buf = new byte[1 << 16];
        ByteBuffer src = stored.duplicate();
        ((Buffer) src).clear();
        long produced = 0;
        try {
            while (!inflater.finished()) {
                if (inflater.needsInput()) {
                    if (!src.hasRemaining()) {
                        throw new InvalidPackageException(); // stream ends before its end marker
                    }
                    int n = Math.min(in.length, src.remaining());
                    src.get(in, 0, n);
                    inflater.setInput(in, 0, n);
                }
                if (inflater.needsDictionary()) {
                    throw new InvalidPackageException();
                }
                int room = (int) Math.min(buf.length, expected - produced + 1); // +1 detects an overlong stream
                int got = inflater.inflate(buf, 0, room);
                if (got > 0) {
                    if (produced + got > expected) {
                        throw new InvalidPackageException();
                    }
                    out.put(buf, 0, got);
                    produced += got;
                }
            }
            if (produced != expected || inflater.getRemaining() != 0 || src.hasRemaining()) {
                throw new InvalidPackageException(); // short output, or bytes after the end of the stream
            }
        } catch (DataFormatException e) {
            throw new InvalidPackageException();
        } finally {
            inflater.end();
            Arrays.fill(in, (byte) 0);
            Arrays.fill(buf, (byte) 0);
        }
    }

    private static String joined(List<String> items) {
        StringBuilder sb = new StringBuilder();
        for (String item : items) {
            sb.append(sb.length() == 0 ? "" : ", ").append(item);
        }
        return sb.toString();
    }

    /** Publisher fingerprint shown to people: first 16 bytes of SHA-256(label || key), hex, grouped by four. */
    static String fingerprint(byte[] publisherKey) {
        String h = Crypto.toHex(Arrays.copyOf(Crypto.sha256(Crypto.ascii("edgeseal/v1/fingerprint/ed25519"), publisherKey), 16));
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < h.length(); i += 4) {
            sb.append(i == 0 ? "" : ":").append(h, i, i + 4);
        }
        return sb.toString();
    }

    /** Big-endian reads over the file; reading past the end is an InvalidPackage. */
    private static final class Reader {
        final byte[] data;
        int pos;

        Reader(byte[] data) {
            this.data = data;
        }

        int remaining() {
            return data.length - pos;
        }

        byte[] take(int n) throws InvalidPackageException {
            need(n);
            byte[] out = Arrays.copyOfRange(data, pos, pos + n);
            pos += n;
            return out;
        }

        void skip(int n) throws InvalidPackageException {
            need(n);
            pos += n;
        }

        int u8() throws InvalidPackageException {
            need(1);
            return data[pos++] & 0xff;
        }

        int u16() throws InvalidPackageException {
            return (u8() << 8) | u8();
        }

        long u32() throws InvalidPackageException {
            return ((long) u16() << 16) | u16();
        }

        long u64() throws InvalidPackageException {
            return (u32() << 32) | u32();
        }

        private void need(int n) throws InvalidPackageException {
            if (n < 0 || n > data.length - pos) {
                throw new InvalidPackageException();
            }
        }
    }
}
