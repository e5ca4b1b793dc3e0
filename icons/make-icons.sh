#!/usr/bin/env bash
# Regenerates the app and tray icons from scratch with ImageMagick, so the artwork is reviewable as text and
# needs no design tool. Run from anywhere: `icons/make-icons.sh`. Needs ImageMagick 6 or 7 (`convert`).
set -euo pipefail

cd "$(dirname "$0")"

if command -v magick >/dev/null 2>&1; then
  im=(magick)
else
  im=(convert)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# PNG32 forces RGBA: Tauri refuses icons without an alpha channel. Without the date chunks a rerun
# reproduces the same bytes, so an unchanged icon never shows up as a diff.
png_opts=(-strip -define png:exclude-chunks=date,time)

# Everything is drawn once at 512 px and only scaled down, so the small sizes keep the same proportions.
size=512

# The tile: a rounded square with a diagonal blue-to-teal gradient.
"${im[@]}" -size "${size}x${size}" -define gradient:angle=135 gradient:'#1d5fd6-#12a89a' "$work/gradient.png"
"${im[@]}" -size "${size}x${size}" xc:none -fill white -draw "roundrectangle 20,20 491,491 104,104" "$work/tile-mask.png"
"${im[@]}" "$work/gradient.png" "$work/tile-mask.png" -alpha off -compose CopyOpacity -composite "$work/tile.png"

# The key, drawn horizontally (bow on the left, bit pointing right) and then turned 45 degrees so the bow sits
# top-left. A ring rather than a disc keeps the bow readable at 32 px.
"${im[@]}" -size "${size}x${size}" xc:none -fill none -stroke white -strokewidth 42 \
  -draw "circle 158,256 158,330" \
  -stroke none -fill white \
  -draw "roundrectangle 214,234 424,278 10,10" \
  -draw "rectangle 344,262 376,338" \
  -draw "rectangle 392,262 424,318" \
  -virtual-pixel transparent -distort SRT '256,256 1 45 268,258' "$work/key.png"

# A soft shadow under the key lifts it off the gradient without adding another colour. The final DstIn
# trims the shadow back to the tile's rounded corners.
"${im[@]}" "$work/key.png" -background '#0b2a5a' -shadow 45x8+0+6 "$work/key-shadow.png"
"${im[@]}" "$work/tile.png" \
  "$work/key-shadow.png" -gravity center -geometry +0+4 -compose over -composite \
  "$work/key.png" -gravity center -geometry +0+0 -compose over -composite \
  "$work/tile-mask.png" -compose DstIn -composite \
  "$work/icon-512.png"

"${im[@]}" "$work/icon-512.png" "${png_opts[@]}" PNG32:icon.png
for px in 32 128 256; do
  case $px in
    256) name=128x128@2x.png ;;
    *) name=${px}x${px}.png ;;
  esac
  "${im[@]}" "$work/icon-512.png" -filter Lanczos -resize "${px}x${px}" "${png_opts[@]}" "PNG32:$name"
done

# Windows: one .ico with the sizes Explorer, the taskbar and the Start menu ask for (tauri-build embeds it as
# the programs' icon resource; the installer uses it too). 256 px frames are stored as PNG inside the ICO.
"${im[@]}" "$work/icon-512.png" -define icon:auto-resize=256,128,64,48,32,24,16 icon.ico

# The tray gets the same artwork; panels scale it themselves, 32 px is what most of them ask for.
cp 32x32.png tray.png
