; KeyVault Proxy for Windows: a per-user setup program (no administrator rights), built by
; scripts/windows.sh package with Debian's makensis. It installs the tray app and the kvproxy CLI into
; %LOCALAPPDATA%\Programs\KeyVault Proxy (with the window program the tray app starts on demand), adds a Start-menu entry, puts the folder on the user's PATH and
; registers an uninstaller under "Installed apps". The uninstaller removes exactly that; profiles,
; settings (%APPDATA%\kvproxy) and the Credential Manager entries stay, as users expect of a reinstall.
;
; makensis -D values (all required): VERSION (x.y.z), SRCDIR (folder with kvproxy.exe,
; kvproxy-desktop.exe and kvproxy-window.exe), OUTFILE, ICON (.ico), LICENSE (text file), PUBLISHER; optional: COMPRESSOR.

Unicode true
; 64-bit stub and plugins: the programs are x86_64 only, and the setup then runs where they can.
Target amd64-unicode
RequestExecutionLevel user
ManifestDPIAware true
; lzma for what users download; the tests pass COMPRESSOR=zlib, many times faster on debug builds.
!ifndef COMPRESSOR
  !define COMPRESSOR lzma
!endif
SetCompressor /SOLID ${COMPRESSOR}

!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"

!define PRODUCT "KeyVault Proxy"
!define APP_EXE "kvproxy-desktop.exe"
!define WINDOW_EXE "kvproxy-window.exe"
!define CLI_EXE "kvproxy.exe"
; The key Windows' "Installed apps" reads for this user.
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\KeyVaultProxy"
; The app's own start-at-login entry (tauri-plugin-autostart names it after the product).
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define STARTUP_APPROVED_KEY "Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
; Microsoft Edge WebView2 Runtime, as its distribution guide says to detect it.
!define WEBVIEW2_GUID "{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
!define WEBVIEW2_BOOTSTRAPPER_URL "https://go.microsoft.com/fwlink/p/?LinkId=2124703"

Name "${PRODUCT}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${PRODUCT}"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${PRODUCT} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIFileVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${PRODUCT}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "${PUBLISHER}, MIT license"
VIAddVersionKey "FileDescription" "${PRODUCT} setup"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${APP_EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${PRODUCT}"

!insertmacro MUI_PAGE_LICENSE "${LICENSE}"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; A running tray app or `kvproxy serve` holds its program file open, so both are stopped first (profiles are
; saved as they are edited: nothing is lost). Without administrator rights taskkill reaches only this user's
; processes.
!macro StopRunningApp
  nsExec::Exec '"$SYSDIR\taskkill.exe" /F /IM ${APP_EXE}'
  Pop $0
  nsExec::Exec '"$SYSDIR\taskkill.exe" /F /IM ${WINDOW_EXE}'
  Pop $0
  nsExec::Exec '"$SYSDIR\taskkill.exe" /F /IM ${CLI_EXE}'
  Pop $0
  Sleep 500
!macroend

; A drive's root as the folder would end the quoted "$INSTDIR" argument in \", which Windows reads as a
; quote; and uninstalling would try to remove the root.
Function .onVerifyInstDir
  StrLen $0 $INSTDIR
  ${If} $0 <= 3
    Abort
  ${EndIf}
FunctionEnd

Function EnsureWebView2
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_GUID}" "pv"
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKLM "SOFTWARE\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_GUID}" "pv"
  ${EndIf}
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKCU "Software\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_GUID}" "pv"
  ${EndIf}
  ${If} $0 != ""
  ${AndIf} $0 != "0.0.0.0"
    DetailPrint "WebView2 Runtime $0 is installed"
    Return
  ${EndIf}
  ; Windows 11 and current Windows 10 have it; older ones get Microsoft's small bootstrapper, which
  ; downloads and installs the evergreen runtime for this user (what Tauri's bundler does by default).
  DetailPrint "The WebView2 Runtime (needed for the window) is missing: getting Microsoft's installer"
  StrCpy $1 "$TEMP\MicrosoftEdgeWebview2Setup.exe"
  Delete $1
  ${If} ${FileExists} "$SYSDIR\curl.exe"
    nsExec::ExecToLog '"$SYSDIR\curl.exe" --fail --silent --show-error --location --output "$1" "${WEBVIEW2_BOOTSTRAPPER_URL}"'
    Pop $0
  ${EndIf}
  ${If} ${FileExists} $1
    ExecWait '"$1" /silent /install' $0
    Delete $1
    DetailPrint "WebView2 bootstrapper finished with code $0"
  ${Else}
    DetailPrint "Could not download the WebView2 Runtime. The kvproxy command works without it; for the app, \
      install it from https://developer.microsoft.com/microsoft-edge/webview2/"
    ${IfNot} ${Silent}
      MessageBox MB_ICONINFORMATION|MB_OK "KeyVault Proxy's window needs the Microsoft Edge WebView2 Runtime, \
        which could not be downloaded now.$\r$\n$\r$\nThe kvproxy command (tokens, kvproxy serve) works \
        without it. Install the runtime from https://developer.microsoft.com/microsoft-edge/webview2/ \
        before you start the app."
    ${EndIf}
  ${EndIf}
FunctionEnd

Section "Install"
  !insertmacro StopRunningApp
  SetOutPath "$INSTDIR"
  File "${SRCDIR}\${APP_EXE}"
  File "${SRCDIR}\${WINDOW_EXE}"
  File "${SRCDIR}\${CLI_EXE}"
  File /oname=LICENSE.txt "${LICENSE}"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${PRODUCT}.lnk" "$INSTDIR\${APP_EXE}" "" "$INSTDIR\${APP_EXE}" 0 \
    SW_SHOWNORMAL "" "Entra ID app tokens signed by Key Vault"

  ; kvproxy edits the PATH itself: NSIS strings stop at 1,024 characters, many PATHs do not.
  nsExec::ExecToLog '"$INSTDIR\${CLI_EXE}" user-path add "$INSTDIR"'
  Pop $0
  ${If} $0 != 0
    DetailPrint "Could not add $INSTDIR to your PATH (code $0); add it by hand to run kvproxy from any terminal"
  ${EndIf}

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${PRODUCT}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${APP_EXE}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"

  Call EnsureWebView2
SectionEnd

Section "Uninstall"
  !insertmacro StopRunningApp
  nsExec::ExecToLog '"$INSTDIR\${CLI_EXE}" user-path remove "$INSTDIR"'
  Pop $0
  ClearErrors
  Delete "$INSTDIR\${APP_EXE}"
  Delete "$INSTDIR\${WINDOW_EXE}"
  Delete "$INSTDIR\${CLI_EXE}"
  ${If} ${Errors}
    ; Still running (another user's session, or a process taskkill could not end): keep the uninstall entry,
    ; so the user can try again, rather than leave files nothing knows about.
    ${IfNot} ${Silent}
      MessageBox MB_ICONEXCLAMATION|MB_OK "KeyVault Proxy is still running and could not be removed. Quit it \
        (tray menu › Quit, or stop kvproxy serve) and uninstall again."
    ${EndIf}
    SetErrorLevel 2
    Quit
  ${EndIf}
  Delete "$INSTDIR\LICENSE.txt"
  Delete "$INSTDIR\uninstall.exe"
  ; Only when empty: files a user put there are theirs.
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\${PRODUCT}.lnk"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  ; Start at login points at the program just removed.
  DeleteRegValue HKCU "${RUN_KEY}" "${PRODUCT}"
  DeleteRegValue HKCU "${STARTUP_APPROVED_KEY}" "${PRODUCT}"
SectionEnd
