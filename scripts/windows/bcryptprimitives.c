/* The one function of Windows' bcryptprimitives.dll that Rust programs import, for Wine prefixes that lack
 * the DLL (Wine before 9.0, which is what Debian 12 ships). Rust's standard library (1.78 and later) gets
 * its random bytes from ProcessPrng; without the DLL a Rust program does not even start under such a Wine.
 * Windows 10 and 11 have the real DLL: this file is only ever put into the test prefixes that
 * scripts/windows.sh makes, never into the installer. BCryptGenRandom with the system RNG is what
 * ProcessPrng stands for on Windows too. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
