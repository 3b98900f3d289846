//! Handing pictures to libavcodec without copying them: an `AVFrame` whose planes point into a
//! picture we own, kept alive by libavcodec's own reference counting, and scaling straight
//! from a picture's planes.

use std::os::raw::{c_int, c_void};

use ffmpeg::ffi;
use ffmpeg::util::frame::Video as AvFrame;
use ffmpeg_next as ffmpeg;

use super::encoder::I420Picture;

/// A picture that libavcodec may hold after `encode` returns: its planes stay valid and
/// unchanged for as long as the value lives (e.g. a mapped, read-only GStreamer buffer).
pub trait SharedPicture: Send + 'static {
    fn picture(&self) -> I420Picture<'_>;
}

/// An `AVFrame` of ours, freed (with its references) on drop.
pub struct RawFrame(*mut ffi::AVFrame);

impl RawFrame {
    pub fn as_ptr(&self) -> *const ffi::AVFrame {
        self.0
    }

    pub fn as_mut_ptr(&mut self) -> *mut ffi::AVFrame {
        self.0
    }
}

impl Drop for RawFrame {
    fn drop(&mut self) {
        // SAFETY: we own the frame; av_frame_free unrefs its buffers and nulls the pointer.
        unsafe { ffi::av_frame_free(&mut self.0) }
    }
}

/// Wraps `owner`'s planes in a reference-counted `AVFrame` of `width`x`height` (at most the
/// picture's size: the rest is cropped off). `owner` is dropped when libavcodec and the
/// returned frame both let go of it. The planes must have been checked (`check_planes`).
pub fn wrap<P: SharedPicture>(owner: P, width: u32, height: u32) -> Result<RawFrame, ffmpeg::Error> {
    // Boxed first, so the planes are read where they will stay.
    let owner = Box::new(owner);
    let picture = owner.picture();
    let data: [*const u8; 3] = [picture.planes[0].as_ptr(), picture.planes[1].as_ptr(), picture.planes[2].as_ptr()];
    let strides = picture.strides.map(|s| s as c_int);
    // The AVBufferRef spans all three planes (they are views of one mapping).
    let start = picture.planes.iter().map(|p| p.as_ptr() as usize).min().unwrap_or(0);
    let end = picture.planes.iter().map(|p| p.as_ptr() as usize + p.len()).max().unwrap_or(start);
    let opaque = Box::into_raw(owner) as *mut c_void;
    // SAFETY: `opaque` is a leaked Box<P>, given back to `release::<P>` exactly once (by
    // libavutil when the buffer's last reference goes, or below when creating it fails). The
    // buffer is read-only, so libavcodec never writes into the owner's planes.
    unsafe {
        let mut buf = ffi::av_buffer_create(
            start as *mut u8,
            end - start,
            Some(release::<P>),
            opaque,
            ffi::AV_BUFFER_FLAG_READONLY,
        );
        if buf.is_null() {
            drop(Box::from_raw(opaque as *mut P));
            return Err(ffmpeg::Error::Other { errno: ffmpeg::util::error::ENOMEM });
        }
        let frame = ffi::av_frame_alloc();
        if frame.is_null() {
            ffi::av_buffer_unref(&mut buf);
            return Err(ffmpeg::Error::Other { errno: ffmpeg::util::error::ENOMEM });
        }
        (*frame).buf[0] = buf;
        for i in 0..3 {
            (*frame).data[i] = data[i] as *mut u8;
            (*frame).linesize[i] = strides[i];
        }
        (*frame).width = width as c_int;
        (*frame).height = height as c_int;
        (*frame).format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as c_int;
        Ok(RawFrame(frame))
    }
}

unsafe extern "C" fn release<P>(opaque: *mut c_void, _data: *mut u8) {
    // SAFETY: see `wrap`: `opaque` is the Box<P> leaked there, released once.
    drop(unsafe { Box::from_raw(opaque as *mut P) });
}

/// Sets what the encoder reads besides the planes: the pts and a forced I-frame.
pub fn stamp(frame: *mut ffi::AVFrame, pts: i64, force_keyframe: bool) {
    // SAFETY: callers pass a valid frame they own.
    unsafe {
        (*frame).pts = pts;
        (*frame).pict_type = if force_keyframe {
            ffi::AVPictureType::AV_PICTURE_TYPE_I
        } else {
            ffi::AVPictureType::AV_PICTURE_TYPE_NONE
        };
    }
}

/// Scales `picture` (checked planes, the scaler's input size) into `out` (the scaler's output
/// size, writable), reading the planes where they are.
pub fn scale(scaler: *mut ffi::SwsContext, picture: &I420Picture, out: &mut AvFrame) -> Result<(), ffmpeg::Error> {
    let src: [*const u8; 4] =
        [picture.planes[0].as_ptr(), picture.planes[1].as_ptr(), picture.planes[2].as_ptr(), std::ptr::null()];
    let src_stride: [c_int; 4] =
        [picture.strides[0] as c_int, picture.strides[1] as c_int, picture.strides[2] as c_int, 0];
    // SAFETY: the scaler was made for this input size and `out`'s size and format; the planes
    // were checked to hold `height` rows at their strides; `out` is writable.
    let ret = unsafe {
        let dst = out.as_mut_ptr();
        ffi::sws_scale(
            scaler,
            src.as_ptr(),
            src_stride.as_ptr(),
            0,
            picture.height as c_int,
            (*dst).data.as_ptr(),
            (*dst).linesize.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(ffmpeg::Error::from(ret));
    }
    Ok(())
}
