//! H.264 picture parameter set (ITU-T H.264 §7.3.2.2): checked field by field up to
//! `redundant_pic_cnt_present_flag`, so a PPS that reaches a GStreamer parser is one our own
//! parser accepted. Only the ids are kept.

use super::{unescape_rbsp, H264Error, NAL_PPS};
use crate::media::bits::{BitReader, BitsError};

/// The fields of a PPS the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pps {
    pub pps_id: u32,
    pub sps_id: u32,
}

/// Most slice group map units a PPS may list (8192x4320 in macroblocks is 139,264).
const MAX_MAP_UNITS: u32 = 139_264;

impl Pps {
    /// Parses a PPS NAL unit (with its NAL header byte, emulation prevention bytes in place).
    pub fn parse(nal: &[u8]) -> Result<Pps, H264Error> {
        let header = *nal.first().ok_or(H264Error::Truncated("PPS"))?;
        if header & 0x1f != NAL_PPS {
            return Err(H264Error::Invalid(format!("NAL type {} is not a PPS", header & 0x1f)));
        }
        let rbsp = unescape_rbsp(&nal[1..]);
        parse_rbsp(&rbsp).map_err(|_| H264Error::Truncated("PPS"))?
    }
}

fn invalid(what: &str) -> Result<Result<Pps, H264Error>, BitsError> {
    Ok(Err(H264Error::Invalid(format!("PPS {what} out of range"))))
}

/// The outer `Result` is for running out of bits; the inner one for values out of range.
fn parse_rbsp(rbsp: &[u8]) -> Result<Result<Pps, H264Error>, BitsError> {
    let mut r = BitReader::new(rbsp);
    let pps_id = r.ue()?;
    let sps_id = r.ue()?;
    if pps_id > 255 {
        return invalid("pic_parameter_set_id");
    }
    if sps_id > 31 {
        return invalid("seq_parameter_set_id");
    }
    r.bit()?; // entropy_coding_mode_flag
    r.bit()?; // bottom_field_pic_order_in_frame_present_flag
    let groups = r.ue()? + 1;
    if groups > 8 {
        return invalid("num_slice_groups_minus1");
    }
    if groups > 1 {
        match r.ue()? {
            0 => {
                for _ in 0..groups {
                    r.ue()?; // run_length_minus1
                }
            }
            2 => {
                for _ in 1..groups {
                    r.ue()?; // top_left
                    r.ue()?; // bottom_right
                }
            }
            3..=5 => {
                r.bit()?; // slice_group_change_direction_flag
                r.ue()?; // slice_group_change_rate_minus1
            }
            6 => {
                let units = r.ue()? + 1;
                if units > MAX_MAP_UNITS {
                    return invalid("pic_size_in_map_units_minus1");
                }
                let bits = u32::BITS - (groups - 1).leading_zeros();
                r.skip(units as usize * bits as usize)?; // slice_group_id
            }
            1 => {}
            _ => return invalid("slice_group_map_type"),
        }
    }
    let (l0, l1) = (r.ue()?, r.ue()?);
    if l0 > 31 || l1 > 31 {
        return invalid("num_ref_idx_default_active_minus1");
    }
    r.bit()?; // weighted_pred_flag
    if r.bits(2)? > 2 {
        return invalid("weighted_bipred_idc");
    }
    let (qp, qs, chroma) = (r.se()?, r.se()?, r.se()?);
    // pic_init_qp_minus26 goes down to -(26 + QpBdOffsetY) at 14 bits.
    if !(-62..=25).contains(&qp) || !(-26..=25).contains(&qs) {
        return invalid("pic_init_qp/qs");
    }
    if !(-12..=12).contains(&chroma) {
        return invalid("chroma_qp_index_offset");
    }
    r.bit()?; // deblocking_filter_control_present_flag
    r.bit()?; // constrained_intra_pred_flag
    r.bit()?; // redundant_pic_cnt_present_flag
    Ok(Ok(Pps { pps_id, sps_id }))
}
