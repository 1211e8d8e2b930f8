package io.edgeseal;

/**
 * BLAKE3 in hash mode (no key, no derive-key context) with a 32-byte output: the {@code "blake3"} chunk
 * digest of format v2 (docs/format.md §10.2). Written from the BLAKE3 specification (2020): 1024-byte chunks
 * of 64-byte blocks, the chunks' chaining values merged pairwise into a binary tree whose root block carries
 * the ROOT flag. The JDK has no BLAKE3, and this library takes no dependencies. One-shot only (a whole chunk
 * of a package is in memory anyway).
 */
final class Blake3 {
    private static final int[] IV = {
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    };
    private static final int[] PERMUTATION = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};
    private static final int CHUNK_START = 1;
    private static final int CHUNK_END = 2;
    private static final int PARENT = 4;
    private static final int ROOT = 8;
    private static final int BLOCK = 64;
    private static final int CHUNK = 1024;

    private Blake3() {}

    /** BLAKE3 of {@code data[offset, offset + length)}, 32 bytes. */
    static byte[] digest(byte[] data, int offset, int length) {
        if (offset < 0 || length < 0 || offset + length > data.length) {
            throw new IllegalArgumentException("range outside the array");
        }
        int chunks = Math.max(1, (length + CHUNK - 1) / CHUNK);
        if (chunks == 1) {
            return words(chunkOutput(data, offset, length, 0, ROOT));
        }
        // Stack of chaining values of complete subtrees, merged as in the specification's incremental
        // hasher: after chunk i (0-based) is added, merge while the number of chunks so far has a
        // trailing zero bit for each level. The last chunk is merged without the ROOT flag until the end.
        int[][] stack = new int[64][];
        int depth = 0;
        for (long i = 0; i < chunks - 1; i++) {
            int start = offset + (int) (i * CHUNK);
            int[] cv = chunkOutput(data, start, CHUNK, i, 0);
            long total = i + 1;
            while ((total & 1) == 0) {
                cv = parent(stack[--depth], cv, 0);
                total >>= 1;
            }
            stack[depth++] = cv;
        }
        int lastStart = (chunks - 1) * CHUNK;
        int[] right = chunkOutput(data, offset + lastStart, length - lastStart, chunks - 1, 0);
        while (depth > 1) {
            right = parent(stack[--depth], right, 0);
        }
        return words(parent(stack[0], right, ROOT));
    }

    /** The chunk's chaining value; {@code extraFlags} (ROOT) goes on its last block. */
    private static int[] chunkOutput(byte[] data, int start, int length, long counter, int extraFlags) {
        int[] cv = IV.clone();
        int blocks = Math.max(1, (length + BLOCK - 1) / BLOCK);
        int[] m = new int[16];
        for (int b = 0; b < blocks; b++) {
            int blockStart = start + b * BLOCK;
            int blockLength = Math.min(BLOCK, length - b * BLOCK);
            load(data, blockStart, blockLength, m);
            int flags = (b == 0 ? CHUNK_START : 0) | (b == blocks - 1 ? CHUNK_END | extraFlags : 0);
            cv = compress(cv, m, counter, blockLength, flags);
        }
        return cv;
    }

    private static int[] parent(int[] left, int[] right, int extraFlags) {
        int[] m = new int[16];
        System.arraycopy(left, 0, m, 0, 8);
        System.arraycopy(right, 0, m, 8, 8);
        return compress(IV.clone(), m, 0, BLOCK, PARENT | extraFlags);
    }

    /** The first 8 words of the compression function's output (the chaining value). */
    private static int[] compress(int[] cv, int[] block, long counter, int blockLength, int flags) {
        int[] v = {
            cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
            IV[0], IV[1], IV[2], IV[3], (int) counter, (int) (counter >>> 32), blockLength, flags,
        };
        int[] m = block.clone();
        for (int round = 0; round < 7; round++) {
            g(v, 0, 4, 8, 12, m[0], m[1]);
            g(v, 1, 5, 9, 13, m[2], m[3]);
            g(v, 2, 6, 10, 14, m[4], m[5]);
            g(v, 3, 7, 11, 15, m[6], m[7]);
            g(v, 0, 5, 10, 15, m[8], m[9]);
            g(v, 1, 6, 11, 12, m[10], m[11]);
            g(v, 2, 7, 8, 13, m[12], m[13]);
            g(v, 3, 4, 9, 14, m[14], m[15]);
            if (round < 6) {
                int[] permuted = new int[16];
                for (int i = 0; i < 16; i++) {
                    permuted[i] = m[PERMUTATION[i]];
                }
                m = permuted;
            }
        }
        int[] out = new int[8];
        for (int i = 0; i < 8; i++) {
            out[i] = v[i] ^ v[i + 8];
        }
        return out;
    }

    private static void g(int[] v, int a, int b, int c, int d, int x, int y) {
        v[a] = v[a] + v[b] + x;
        v[d] = Integer.rotateRight(v[d] ^ v[a], 16);
        v[c] = v[c] + v[d];
        v[b] = Integer.rotateRight(v[b] ^ v[c], 12);
        v[a] = v[a] + v[b] + y;
        v[d] = Integer.rotateRight(v[d] ^ v[a], 8);
        v[c] = v[c] + v[d];
        v[b] = Integer.rotateRight(v[b] ^ v[c], 7);
    }

    /** Little-endian words of a block, zero-padded past {@code length}. */
    private static void load(byte[] data, int start, int length, int[] m) {
        java.util.Arrays.fill(m, 0);
        for (int i = 0; i < length; i++) {
            m[i >> 2] |= (data[start + i] & 0xFF) << (8 * (i & 3));
        }
    }

    private static byte[] words(int[] cv) {
        byte[] out = new byte[32];
        for (int i = 0; i < 32; i++) {
            out[i] = (byte) (cv[i >> 2] >>> (8 * (i & 3)));
        }
        return out;
    }
}
